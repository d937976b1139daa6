"""The engine most in-process tests run: on the CPU, with every conditioner the backend
registers (ControlNets, adapters, LoRAs, ...), over model folders the suite built.

Tests that need something else (an observer, a trainer, the fast path switched by the
environment, another option) build their Engine themselves."""

from __future__ import annotations

from pathlib import Path


def cpu_engine(*sources, cache_size: int | None = 1):
    """An Engine over `sources`: model roots (paths) or one ModelLibrary. `cache_size`: how
    many models stay loaded (1 by default: the test machines are small; None: the
    engine's own default)."""
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    if len(sources) == 1 and isinstance(sources[0], ModelLibrary):
        library = sources[0]
    else:
        if not all(isinstance(s, str | Path) for s in sources):
            raise TypeError(f"cpu_engine takes model roots or one ModelLibrary, not {sources}")
        library = ModelLibrary(list(sources))
    return Engine(library, device="cpu", extensions=engine_extensions(), cache_size=cache_size)
