"""Frames in folders (sequence.FrameIO): motion from flow files, outputs as PNGs, for the
CLI and the bench. A frame is `<prefix><frame:04d>`: `.npz` in the flow folder (the format
motion.py describes), `.png` in the output folder (written through a temporary name, so a
PNG with the final name is whole and a stopped run resumes from it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..codec import decode_png, encode_png
from .motion import FrameMotion, MotionError, flow_path, load_motion


def flow_frames(folder: str | os.PathLike, prefix: str = "frame_") -> list[int]:
    """The frame numbers that have flow files, in order."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.npz$")
    found = (pattern.match(p.name) for p in Path(folder).iterdir())
    return sorted(int(m.group(1)) for m in found if m)


class FolderFrames:
    def __init__(
        self, flows: str | os.PathLike, out: str | os.PathLike, prefix: str = "frame_"
    ) -> None:
        self.flows = Path(flows)
        self.out = Path(out)
        self.prefix = prefix
        self.out.mkdir(parents=True, exist_ok=True)
        self._cache: dict[int, FrameMotion] = {}

    def png(self, frame: int) -> Path:
        return self.out / f"{self.prefix}{frame:04d}.png"

    def motion(self, frame: int) -> FrameMotion:
        if frame not in self._cache:
            path = flow_path(self.flows, frame, self.prefix)
            if not path.exists():
                raise MotionError(f"no flow file for frame {frame} ({path.name})")
            # The last few frames are enough: the modes walk the range in order.
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[frame] = load_motion(path)
        return self._cache[frame]

    def load(self, frame: int) -> np.ndarray | None:
        path = self.png(frame)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            return decode_png(data)[..., :3]
        except ValueError:  # cut off mid-write by an older tool: make it again
            return None

    def save(self, frame: int, image: np.ndarray) -> None:
        path = self.png(frame)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(encode_png(np.ascontiguousarray(image)))
        os.replace(tmp, path)
