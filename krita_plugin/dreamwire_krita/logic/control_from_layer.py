"""Make a control layer from the active layer: the backend's preprocess job (A1111's
"preview annotator result", JobMode.PREPROCESS) runs an annotator (depth, normals, line
art, soft edge, canny, pose, face) on the layer's pixels, and its map lands as a new layer above it,
marked as a control layer of that type (controls.py), ready for the next generation.

Which annotator runs a type: the first of its `ANNOTATORS` the backend's welcome lists
(`preprocessors`); a backend that lists none (one from before the preprocess mode, which
would refuse the job) offers nothing to make.

Plain logic: no Krita imports; krita_host reads and writes the pixels, the controller
wires it up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamwire.shared.events import Welcome
from dreamwire.shared.job import ControlUnit, Job
from dreamwire.shared.job_mode import JobMode

from .controls import TYPES, ControlMark, defaults
from .pixels import content_bounds, flatten_rgb
from .regions import PlanError

# Control type -> the preprocessors that make its map, best first: A1111's defaults where
# the backend runs them without weights (lineart_standard), else what Krita AI Diffusion
# uses (Depth Anything v2, DWPose through openpose_full, which falls back to OpenPose).
ANNOTATORS: dict[str, tuple[str, ...]] = {
    "depth": ("depth_anything_v2", "depth_midas", "depth_marigold"),
    "lineart": ("lineart_standard", "lineart"),
    "softedge": ("softedge_pidinet", "softedge_hed"),
    "canny": ("canny",),
    # NormalBAE is what the SD1.5 normal ControlNet was trained on; Marigold's normals
    # come in its convention (marigold_annotators.py).
    "normalbae": ("normalbae", "normal_marigold"),
    "openpose": ("openpose_full", "dw_openpose_full", "openpose"),
    # MediaPipe's face landmarks drawn as ControlNetMediaPipeFace reads them.
    "mediapipe_face": ("mediapipe_face",),
}


@dataclass(frozen=True)
class MadeControl:
    """What a preprocess job was sent for: the layer it read and the type it makes."""

    source_id: str
    source_name: str
    type: str  # wire control type, a key of ANNOTATORS


def annotator(wire_type: str, welcome: Welcome | None) -> str | None:
    """The preprocessor that makes `wire_type`'s map on this backend, or None."""
    listed = set(welcome.preprocessors) if welcome is not None else set()
    return next((p for p in ANNOTATORS.get(wire_type, ()) if p in listed), None)


def makeable(welcome: Welcome | None) -> list[str]:
    """The docker labels (controls.TYPES) of the types this backend can make, in its order."""
    return [label for label, wire in TYPES.items() if annotator(wire, welcome)]


def preprocess_job(wire_type: str, welcome, rgba: np.ndarray) -> Job:
    """The job that makes `wire_type`'s map of a layer's pixels (RGBA over the canvas)."""
    name = annotator(wire_type, welcome)
    label = _label(wire_type)
    if name is None:
        raise PlanError(
            f"The backend cannot make a {label} layer: it lists none of the preprocessors "
            f"{', '.join(ANNOTATORS.get(wire_type, ())) or '(none for this type)'}."
        )
    if rgba.shape[2] == 4 and content_bounds(rgba[:, :, 3]) is None:
        raise PlanError(f"The active layer is empty: nothing to make a {label} layer from.")
    job = Job(
        mode=JobMode.PREPROCESS,
        # Over white, as the annotators composite it and as refine sends the canvas.
        init_image=flatten_rgb(rgba),
        controls=[ControlUnit(wire_type, None, preprocessor=name)],
        tag=f"krita:control:{wire_type}",
    )
    return job.validate()


def layer_name(wire_type: str, source_name: str) -> str:
    """The new layer's name: the type first (the Layers docker shows the start)."""
    return f"{_label(wire_type)} of {source_name}".strip()


def layer_pixels(image: np.ndarray) -> np.ndarray:
    """The map (H x W x 3 uint8) as an opaque RGBA layer: control maps are used as painted."""
    rgb = np.asarray(image, np.uint8)[:, :, :3]
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def mark(wire_type: str) -> ControlMark:
    """The new layer's control mark: the type's usual weight and window."""
    d = defaults(wire_type)
    return ControlMark(type=wire_type, weight=d.weight, start=d.start, end=d.end)


def _label(wire_type: str) -> str:
    return next((label for label, wire in TYPES.items() if wire == wire_type), wire_type)
