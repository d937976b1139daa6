"""Is the admission estimate honest on the CPU? Peak RSS of real tiny-model jobs against it.

    python bench/bench_admission.py MODELS_ROOT [WxHxB ...]   (default 512x512x1 ...)

Runs each job (one Euler step) on a CPU engine over the tiny models, after a 64x64 job
has loaded the model, and prints the peak resident memory it added (VmHWM, reset through
/proc/self/clear_refs before each job; Linux only) next to the estimate that
backend/engine/admission.py makes for it with the model loaded. Exit status 1 when an
estimate is below what was measured.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def main(argv: list[str]) -> int:
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.shared.job import Job

    root, specs = Path(argv[0]), argv[1:] or ["512x512x1", "1024x1024x1", "512x512x4"]
    engine = Engine(ModelLibrary([root]), device="cpu")
    engine.run(Job(prompt="x", width=64, height=64, steps=1, sampler="Euler", seed=1))
    ok = True
    for spec in specs:
        w, h, b = map(int, spec.split("x"))
        job = Job(prompt="x", width=w, height=h, batch=b, steps=1, sampler="Euler", seed=1)
        (need,) = engine.check_memory(job)  # the model is loaded: no weights in it
        Path("/proc/self/clear_refs").write_text("5")
        base, t0 = _rss("VmRSS"), time.perf_counter()
        engine.run(job)
        peak = _rss("VmHWM") - base
        ok &= peak <= need.total
        print(
            f"{spec:>12}: measured +{peak / 2**20:6.0f} MiB, estimate {need.total / 2**20:6.0f} "
            f"MiB ({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
