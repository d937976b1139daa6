"""The Blender side of an animation render's frames (shared.animation.sequence.FrameIO):
each frame's motion captured from the scene (Blender's Vector pass, depth and object ids),
and the frames on disk in the output folder (core.animation's names and atomic writes).

Motion is captured once per frame and kept as flow files in a folder of the render's own
(removed when it ends): keyframe propagation reads each frame's motion going forward and
again going back. It is not kept across runs: the artist may change the animation between
a stop and the resume, and the frames still to make must follow the scene as it is now.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from dreamwire.shared.animation.motion import FrameMotion, flow_path, load_motion, save_motion
from dreamwire.shared.codec import decode_png, encode_png

from .core import animation as anim
from .core.tasks import ActionError


class BlenderFrames:
    def __init__(self, scene, folder: Path, width: int, height: int) -> None:
        self.scene = scene
        self.folder = Path(folder)
        self.size = (width, height)
        self.flows = Path(tempfile.mkdtemp(prefix="dreamwire-motion-"))
        self.written = 0

    def motion(self, frame: int) -> FrameMotion:
        path = flow_path(self.flows, frame)
        if path.exists():
            return load_motion(path)
        from .capture import CaptureError, capture_motion

        self.scene.frame_set(frame)
        try:
            m = capture_motion(self.scene, None, *self.size)
        except CaptureError as exc:
            raise ActionError(str(exc)) from None
        save_motion(path, m)
        return m

    def load(self, frame: int) -> np.ndarray | None:
        path = anim.frame_path(self.folder, frame)
        if not anim.is_complete_png(path):
            return None
        img = decode_png(path.read_bytes())[..., :3]
        # A frame of another size (render size changed) cannot be warped from: make it anew.
        return img if img.shape[:2] == (self.size[1], self.size[0]) else None

    def save(self, frame: int, image: np.ndarray) -> None:
        anim.write_atomic(anim.frame_path(self.folder, frame), encode_png(image))
        self.written += 1

    def close(self) -> None:
        shutil.rmtree(self.flows, ignore_errors=True)
