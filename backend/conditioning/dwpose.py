"""DWPose (Yang et al. 2023) whole-body pose for the OpenPose control, run with onnxruntime
from the two ONNX files the A1111 and ComfyUI annotators use:
  yolox_l.onnx           the person detector (dwpose_yolox.py)
  dw-ll_ucoco_384.onnx   RTMPose whole-body keypoints (dwpose_rtmpose.py)
looked for (annotator_files.py) in A1111's annotator/downloads/openpose/, ComfyUI's
comfyui_controlnet_aux/ckpts/yzd-v/DWPose/, <root>/annotators/ and Dreamwire's annotator
folder (directly or in DWPose/).

Preprocessors: dw_openpose_full (body, hands and face: A1111's), dw_openpose (body),
dw_openpose_hand (body and hands), dw_openpose_face (body and face), dw_openpose_faceonly
(face); they need DWPose. openpose, openpose_hand, openpose_face, openpose_faceonly and
openpose_full run DWPose when its two files are there (and the infotext then names the
dw_* preprocessor that ran, preprocess.ran_as), else the original OpenPose networks
(controlnet-aux). The run is the annotator's on the picture at the unit's detect
resolution (detect_resolution.py): detect people, estimate each one's 133 points, map them
to OpenPose's 18 + hands + face (dwpose_draw.py), draw. A picture with nobody found gives
a black control image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.backend import onnx_sessions
from dreamwire.backend.conditioning import dwpose_draw, dwpose_rtmpose, dwpose_yolox
from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode

DETECTOR = "yolox_l.onnx"
POSE = "dw-ll_ucoco_384.onnx"
# Relative to annotator_files' folders: A1111's subfolder, ComfyUI's, Dreamwire's own.
FOLDERS = ("openpose", "yzd-v/DWPose", "DWPose", "")


def candidates(name: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{name}" if folder else name for folder in FOLDERS)


def find_files(roots=()) -> tuple[Path, Path] | None:
    det = annotator_files.find(candidates(DETECTOR), roots)
    pose = annotator_files.find(candidates(POSE), roots)
    return (det, pose) if det and pose else None


def missing(roots=(), also: str = "") -> DreamwireError:
    """PREPROCESSOR_UNAVAILABLE naming the files, where each goes and the folders searched."""
    where = "; ".join(str(f) for f in annotator_files.search_folders(roots))
    return DreamwireError(
        ErrorCode.PREPROCESSOR_UNAVAILABLE,
        f"DWPose needs {DETECTOR} and {POSE} (from huggingface.co/yzd-v/DWPose): put them in "
        "extensions/sd-webui-controlnet/annotator/downloads/openpose/ (A1111), "
        "custom_nodes/comfyui_controlnet_aux/ckpts/yzd-v/DWPose/ (ComfyUI) or an annotator "
        f"folder; searched: {where}.{also} Or send a ready-made control image with "
        "preprocessor 'none'",
    )


def cached_session(path: Path):
    return onnx_sessions.cached(path, "DWPose")


def estimate(rgb: np.ndarray, files: tuple[Path, Path]) -> list[dwpose_draw.WholeBodyPose]:
    """Everybody's pose in an RGB uint8 picture."""
    det, pose = (cached_session(p) for p in files)
    try:
        boxes = dwpose_yolox.detect(det, rgb)
        if len(boxes) == 0:
            return []
        keypoints, scores = dwpose_rtmpose.estimate(pose, rgb, boxes)
    except DreamwireError:
        raise
    except Exception as exc:  # a file with other inputs/outputs than DWPose's
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{files[0].name} / {files[1].name} do not run as DWPose's models: {exc}",
        ) from exc
    return dwpose_draw.poses(dwpose_draw.to_openpose(keypoints, scores))


@dataclass(frozen=True)
class DWPose:
    """A DWPose preprocessor drawing the chosen parts; `fallback` (the original OpenPose
    preprocessor) runs when DWPose's files are not there."""

    body: bool = True
    hands: bool = True
    face: bool = True
    fallback: Callable[..., np.ndarray] | None = None

    def __call__(self, rgb: np.ndarray, roots=(), **params) -> np.ndarray:
        """The control image for an RGB uint8 picture (H x W x 3)."""
        files = find_files(roots)
        if files is None:
            if self.fallback is None:
                raise missing(roots)
            try:
                return self.fallback(rgb, roots=roots, **params)
            except DreamwireError as exc:
                if exc.code is not ErrorCode.PREPROCESSOR_UNAVAILABLE:
                    raise
                raise missing(roots, f" Or the original OpenPose: {exc}") from None
        people = estimate(rgb, files)
        return dwpose_draw.draw(people, *rgb.shape[:2], self.body, self.hands, self.face)
