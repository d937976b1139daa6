"""Several test scripts in one Krita: each part's check(config) result under its name.

Krita takes ~19 s of CPU to start, so the offline, backend and local-backend checks share
one kritarunner run; a part that fails records its traceback and the next part still runs.
Config: {"parts": [[script_module, config], ...]}, run in that order.
"""

import importlib
import traceback

import dwtest


def main(*_):
    dwtest.run(check)


def check(cfg):
    out = {}
    for name, part_cfg in cfg["parts"]:
        try:
            out[name] = importlib.import_module(name).check(part_cfg)
        except Exception:
            out[name] = {"error": traceback.format_exc()}
    return out
