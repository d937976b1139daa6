"""The engine's only view of the model library: find entries, load them, name them.

Kept in one place so that the library's API can move without touching the runner.
"""

from __future__ import annotations

from dreamwire.backend.library import Kind, ModelEntry, load_pipeline, load_vae
from dreamwire.shared.errors import DreamwireError, ErrorCode

__all__ = ["load_pipeline", "load_vae"]

DEFAULT_MODEL = "tiny-sd1"


def family(arch: str | None) -> str:
    a = (arch or "").lower()
    if "sdxl" in a:
        return "sdxl"
    if "sd2" in a:
        return "sd2"
    return "sd1"


def _find(library, kind: Kind, name: str) -> ModelEntry:
    return library.get(kind, name)


def checkpoint(library, name: str) -> ModelEntry:
    return _find(library, Kind.CHECKPOINT, name)


def vae(library, name: str) -> ModelEntry:
    return _find(library, Kind.VAE, name)


def names(library, kind: str) -> list[str]:
    return [e.name for e in library.entries(Kind(kind))]


def short_hash(library, entry: ModelEntry) -> str:
    fn = getattr(library, "short_hash", None)
    return fn(entry) if fn else ""


def default_checkpoint(library) -> str:
    models = names(library, "checkpoint")
    if not models:
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            "no checkpoints found in the model folders; add a models root with --models",
        )
    return DEFAULT_MODEL if DEFAULT_MODEL in models else models[0]
