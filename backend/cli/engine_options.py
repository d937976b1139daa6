"""Engine options that `dreamwire generate` and `dreamwire serve` share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--low-vram", action="store_true", default=None)
    p.add_argument(
        "--no-fast-path",
        action="store_true",
        help="run eager diffusers: no compile, channels_last or fused QKV (DREAMWIRE_FAST_PATH=0)",
    )


def apply_fast_path_choice(args: argparse.Namespace) -> None:
    """--no-fast-path turns the fast path off for the whole process, before any model loads."""
    if getattr(args, "no_fast_path", False):
        from dreamwire.backend.engine import fastpath

        fastpath.set_enabled(False)


def build_engine(
    models: Sequence[Path | str],
    device: str | None,
    low_vram: bool | None,
    uploads: Path | None = None,
):
    """The engine as an artist runs it: the library over `models` with every conditioning
    extension (LoRA, embeddings, ControlNet, adapters) and LoRA training, whose jobs' own
    pictures go into `uploads` (None: such jobs are refused). The engine itself never
    imports the conditioning or training packages; this is where they are put together."""
    import functools

    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.training.job_run import run_job

    return Engine(
        ModelLibrary([Path(m) for m in models]),
        device=device,
        low_vram=low_vram,
        extensions=engine_extensions(),
        trainer=functools.partial(run_job, uploads=uploads),
    )
