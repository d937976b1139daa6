"""One torch thread count for every process the suite runs a model in.

Tests compare images bit for bit across processes (the CLI in-process against a backend
process, a remote link against a raw one). Float reductions split across a different number
of threads round differently, so two sides agree to the bit only when they run the same code
with the same thread count on the same CPU: on an AMD EPYC, a backend at one thread and a
CLI at every core differed by 1 in one pixel of 12,288. The root conftest sets this count
in the environment before torch is imported, so the pytest process and every child it
starts (backend, CLI, Blender, Krita) inherit it; `thread_env` pins it for a child whose
environment a test builds itself.
"""

from __future__ import annotations

import os

# One thread: the test machines have two cores shared by several processes at once.
TORCH_THREADS = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_environment(env: dict[str, str] | os._Environ = os.environ) -> None:
    for name in THREAD_VARIABLES:
        env[name] = str(TORCH_THREADS)


def thread_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment with the suite's thread count (and `extra`) for a child."""
    env = dict(os.environ)
    pin_environment(env)
    env.update(extra or {})
    return env
