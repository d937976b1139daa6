"""Finding a text encoder's tokenizer offline, in the artist's own installs.

Nothing may be downloaded at run time, and no package ships the tokenizers of T5 or Qwen,
but every program that runs a model has a copy: an environment variable the artist sets, a
diffusers folder's tokenizer subfolder, the program's own folder (ComfyUI keeps its
tokenizers in `comfy/text_encoders/<name>_tokenizer/`), and the Hugging Face hub cache of
anyone who ran the model with diffusers. The install folders are found by walking up from
the model roots and files (a models root is usually `<ComfyUI>/models`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

# How far above a model root or file an install's own folder may be
# (ComfyUI/models/unet/sub/x.safetensors is four levels below ComfyUI/).
_UP = 5


@dataclass(frozen=True)
class TokenizerPlaces:
    """Where one tokenizer may be, best first."""

    env: str  # a folder with the files, or one of them
    subfolder: str  # in a diffusers pipeline folder ("tokenizer_2")
    installs: tuple[Path, ...]  # relative to an install's own folder
    hub_globs: tuple[str, ...]  # under a hub cache root
    # File sets any one of which makes a folder usable.
    files: tuple[tuple[str, ...], ...]

    def usable(self, folder: Path) -> bool:
        return any(all((folder / n).is_file() for n in names) for names in self.files)


def candidates(
    where: TokenizerPlaces, places: Iterable[Path], diffusers_folders: Iterable[Path] = ()
) -> list[Path]:
    """Folders that may hold the tokenizer, best first (nothing is checked yet)."""
    out: list[Path] = []
    if env := os.environ.get(where.env):
        path = Path(env).expanduser()
        out.append(path.parent if path.is_file() else path)
    out += [Path(f) / where.subfolder for f in diffusers_folders]
    for place in places:
        for base in [Path(place), *list(Path(place).parents)[:_UP]]:
            out += [base / rel for rel in where.installs]
    out += _hub_cache_folders(where.hub_globs)
    seen: list[Path] = []
    for path in out:
        if path not in seen:
            seen.append(path)
    return seen


def _hub_cache_folders(globs: tuple[str, ...]) -> list[Path]:
    roots = []
    if env := os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(env))
    if env := os.environ.get("HF_HOME"):
        roots.append(Path(env) / "hub")
    roots.append(Path.home() / ".cache" / "huggingface" / "hub")
    return [found for root in roots for pattern in globs for found in sorted(root.glob(pattern))]


def find(
    where: TokenizerPlaces, places: Iterable[Path], diffusers_folders: Iterable[Path] = ()
) -> Path | None:
    return next((f for f in candidates(where, places, diffusers_folders) if where.usable(f)), None)


def require(
    where: TokenizerPlaces,
    places: Iterable[Path],
    diffusers_folders: Iterable[Path],
    missing: str,
) -> Path:
    """The first usable folder; MODEL_PART_MISSING with `missing` (what to do) if none."""
    found = find(where, places, diffusers_folders)
    if found is None:
        raise DreamwireError(ErrorCode.MODEL_PART_MISSING, missing)
    return found
