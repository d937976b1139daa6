"""Where annotator weights are looked for: the artist's existing installs first, then
Dreamwire's own folder, so a model downloaded once for A1111 or ComfyUI serves Dreamwire too.

For every model root the library has (an A1111 or ComfyUI install folder):
  <root>/extensions/sd-webui-controlnet/annotator/downloads   A1111's ControlNet extension
  <root>/custom_nodes/comfyui_controlnet_aux/ckpts            ComfyUI's controlnet_aux
  <root>/annotators
then Dreamwire's annotator folder ($DREAMWIRE_ANNOTATORS, else <cache>/dreamwire/annotators).
A file is named by its path under one of these, which differs per install (A1111 keeps Depth
Anything v2 in depth_anything_v2/, ComfyUI in depth-anything/Depth-Anything-V2-Large/)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

A1111_DOWNLOADS = Path("extensions/sd-webui-controlnet/annotator/downloads")
COMFY_CKPTS = Path("custom_nodes/comfyui_controlnet_aux/ckpts")


def annotator_dir() -> Path:
    """Dreamwire's own annotator folder."""
    if env := os.environ.get("DREAMWIRE_ANNOTATORS"):
        return Path(env)
    from dreamwire.backend.library.catalog import cache_root

    return cache_root() / "annotators"


def search_folders(roots: Iterable[Path | str] = ()) -> list[Path]:
    folders = []
    for root in roots:
        root = Path(root)
        folders += [root / A1111_DOWNLOADS, root / COMFY_CKPTS, root / "annotators"]
    return [*folders, annotator_dir()]


def find(candidates: Sequence[str], roots: Iterable[Path | str] = ()) -> Path | None:
    """The first of `candidates` (paths relative to an annotator folder; a folder counts
    when it holds a config.json) present in the search folders, in their order."""
    for folder in search_folders(roots):
        for rel in candidates:
            path = folder / rel
            if path.is_file() or (path / "config.json").is_file():
                return path
    return None


def missing(what: str, candidates: Sequence[str], roots: Iterable[Path | str] = ()):
    """PREPROCESSOR_UNAVAILABLE naming the file to add and the folders looked in."""
    where = "; ".join(str(f) for f in search_folders(roots))
    return DreamwireError(
        ErrorCode.PREPROCESSOR_UNAVAILABLE,
        f"{what} needs its weights: {candidates[0]} (or one of {', '.join(candidates[1:])}) "
        f"in one of: {where}. Or send a ready-made control image with preprocessor 'none'",
    )
