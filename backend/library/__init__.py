"""The model library: finds, identifies, hashes and safely loads the artist's models."""

from __future__ import annotations

from dreamwire.backend.library.entries import Format, Kind, ModelEntry

__all__ = ["Format", "Kind", "ModelEntry", "ModelLibrary", "load_pipeline", "load_vae"]


def __getattr__(name):
    # Keep `import dreamwire.backend.library` light: loading pulls in diffusers.
    if name in ("load_pipeline", "load_vae"):
        from dreamwire.backend.library import loading

        return getattr(loading, name)
    if name == "ModelLibrary":
        from dreamwire.backend.library.library import ModelLibrary

        return ModelLibrary
    raise AttributeError(name)
