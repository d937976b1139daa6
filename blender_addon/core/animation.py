"""Frame bookkeeping for rendering an animation through the backend.

Frames are written as `<prefix><frame:04d>.png` in one folder, each written to a temporary
name and renamed, so a file with the final name is always complete. A manifest beside the
frames records the seed and a fingerprint of the settings; a later run with the same
settings skips the frames already on disk and continues with the same seed, which is what
makes a stopped render resumable without a visible change at the frame where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "dreamwire_animation.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"


class AnimationError(Exception):
    """A problem with the output folder or range, phrased for the artist."""


def frame_path(folder: str | os.PathLike, frame: int, prefix: str = "frame_") -> Path:
    return Path(folder) / f"{prefix}{frame:04d}.png"


def is_complete_png(path: str | os.PathLike) -> bool:
    """True when the file starts with the PNG signature and ends with the IEND chunk."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size < len(PNG_SIGNATURE) + 12:
            return False
        with p.open("rb") as f:
            head = f.read(8)
            f.seek(size - 8)
            tail = f.read(8)
    except OSError:
        return False
    return head == PNG_SIGNATURE and tail == PNG_IEND


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def fingerprint(settings: dict) -> str:
    """A stable hash of the settings that decide what a frame looks like."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class FramePlan:
    frames: list[int]  # every frame of the range, in render order
    todo: list[int]  # frames still to render
    done: list[int]  # frames already on disk (skipped)
    seed: int  # the seed every frame uses

    def previous(self, frame: int) -> int | None:
        """The frame rendered just before `frame` in this range (img2img source)."""
        i = self.frames.index(frame)
        return self.frames[i - 1] if i > 0 else None


def plan(
    folder: str | os.PathLike,
    start: int,
    end: int,
    step: int = 1,
    seed: int = -1,
    settings: dict | None = None,
    prefix: str = "frame_",
    overwrite: bool = False,
    rng: random.Random | None = None,
) -> FramePlan:
    """Decide which frames to render, resolve the seed, and write the manifest.

    A folder whose manifest was written with other settings is refused (unless
    `overwrite`), rather than mixing two looks into one sequence.
    """
    if step < 1:
        raise AnimationError("frame step must be 1 or more")
    if end < start:
        raise AnimationError(f"the frame range {start}..{end} is empty")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnimationError(f"cannot create the output folder {folder}: {exc.strerror}") from None
    frames = list(range(start, end + 1, step))
    fp = fingerprint(settings or {})
    man_path = folder / MANIFEST
    manifest = None
    if man_path.exists() and not overwrite:
        try:
            manifest = json.loads(man_path.read_text())
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and manifest.get("fingerprint") != fp:
            raise AnimationError(
                f"{folder} already holds frames rendered with other settings; choose another "
                "output folder or turn on Overwrite"
            )
    if manifest is not None:
        seed = int(manifest["seed"])
    elif seed < 0:
        seed = (rng or random.SystemRandom()).randrange(0, 2**32 - 1)
    if overwrite:
        for f in frames:
            frame_path(folder, f, prefix).unlink(missing_ok=True)
    write_atomic(
        man_path, json.dumps({"fingerprint": fp, "seed": seed, "prefix": prefix}, indent=1).encode()
    )
    done = [f for f in frames if is_complete_png(frame_path(folder, f, prefix))]
    done_set = set(done)
    return FramePlan(
        frames=frames, todo=[f for f in frames if f not in done_set], done=done, seed=seed
    )
