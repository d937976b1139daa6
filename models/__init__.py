"""The model catalog: configs that let single-file checkpoints load offline.

`configs/<arch>/` holds a diffusers-style pipeline folder without weights (model_index.json
and each component's config) for every architecture the library can identify; `index.json`
describes each architecture. The tokenizers are not stored here: the library generates them
from the CLIP BPE vocabulary into a cache (see dreamwire.backend.library.catalog).
This package is plain data plus stdlib code, importable without torch.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"


@lru_cache(maxsize=1)
def index() -> dict:
    """The catalog index: {"archs": {arch: {...}}}."""
    return json.loads((ROOT / "index.json").read_text(encoding="utf-8"))


def archs() -> list[str]:
    return sorted(index()["archs"])


def arch_info(arch: str) -> dict:
    try:
        return index()["archs"][arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(archs())}") from None


def config_dir(arch: str) -> Path:
    """The weightless diffusers config folder for an architecture (no tokenizer files)."""
    arch_info(arch)
    return CONFIGS / arch
