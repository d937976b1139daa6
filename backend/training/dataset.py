"""A kohya-layout training folder: images with optional same-name `.txt` captions, directly
in the folder or in subfolders named `<repeats>_<token>` (`10_mychar`: every image in it is
seen ten times per epoch, and `mychar` is the caption of images that have no `.txt`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_REPEATS = re.compile(r"^(\d+)_(.*)$")


@dataclass(frozen=True)
class TrainingImage:
    path: Path
    caption: str
    repeats: int


@dataclass(frozen=True)
class FolderSummary:
    """One image folder as kohya's `ss_dataset_dirs` metadata records it."""

    name: str
    repeats: int
    images: int


@dataclass(frozen=True)
class Dataset:
    root: Path
    images: list[TrainingImage]
    folders: list[FolderSummary]

    def epoch(self) -> list[TrainingImage]:
        """Every image as many times as its folder's repeats (kohya's epoch)."""
        return [img for img in self.images for _ in range(img.repeats)]


def _folder_repeats(folder: Path, root: Path) -> tuple[int, str]:
    if folder == root:
        return 1, ""
    m = _REPEATS.match(folder.name)
    if m is None:
        return 1, folder.name
    return max(int(m.group(1)), 1), m.group(2)


def _caption(image: Path, fallback: str) -> str:
    txt = image.with_suffix(".txt")
    if not txt.is_file():
        return fallback
    try:
        return txt.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DreamwireError(
            ErrorCode.DATASET_UNREADABLE, f"caption {txt} cannot be read as UTF-8 text: {exc}"
        ) from exc


def _check_image(path: Path) -> None:
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DreamwireError(
            ErrorCode.DATASET_UNREADABLE, f"training image {path} cannot be read: {exc}"
        ) from exc


def read_dataset(root: Path | str) -> Dataset:
    """Every image under `root` (the folder itself and its direct subfolders), checked to
    open before any model loads, so a bad file stops the run at once and by name."""
    root = Path(root)
    if not root.is_dir():
        raise DreamwireError(ErrorCode.DATASET_EMPTY, f"training folder {root} does not exist")
    images: list[TrainingImage] = []
    folders: list[FolderSummary] = []
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        repeats, token = _folder_repeats(folder, root)
        found = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for path in found:
            _check_image(path)
            images.append(TrainingImage(path, _caption(path, token), repeats))
        if found:
            folders.append(FolderSummary(folder.name, repeats, len(found)))
    if not images:
        raise DreamwireError(
            ErrorCode.DATASET_EMPTY,
            f"no training images in {root} (looked for {', '.join(IMAGE_SUFFIXES)} in it "
            "and in its subfolders such as 10_mychar)",
        )
    return Dataset(root, images, folders)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as stored: kohya's `original_size` of SDXL's size conditioning."""
    with Image.open(path) as im:
        return im.size


def load_pixels(path: Path, resolution: int) -> torch.Tensor:
    """The image as a (1, 3, res, res) tensor in [-1, 1]: the short side scaled to
    `resolution` and the middle cropped, as diffusers' training scripts do (kohya's
    buckets are a later slice)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    rgb = rgb.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
