"""Layers marked as control images: the marks, how they are stored, and their pixels.

A mark lives with the document (Krita document annotation, keyed by the layer's unique
id), so it survives saving a .kra and renaming or moving the layer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from dreamwire.shared.families import label as family_label
from dreamwire.shared.family_support import family_info, refusal
from dreamwire.shared.job import ControlUnit

from .pixels import content_bounds, flatten_rgb
from .regions import PlanError

ANNOTATION_TYPE = "dreamwire/controls"

# Docker label -> control unit type on the wire (A1111 ControlNet extension names,
# shared/job.py CONTROL_TYPES; Style and Composition are Dreamwire's own, the IP-Adapter
# with IPAdapter_plus's block maps), in the order Krita AI Diffusion lists its layers.
TYPES = {
    "Reference": "ip-adapter",
    "Style": "ip-adapter-style",
    "Composition": "ip-adapter-composition",
    "Scribble": "scribble",
    "Line art": "lineart",
    "Line art (anime)": "lineart_anime",
    "Soft edge": "softedge",
    "Canny": "canny",
    "MLSD": "mlsd",
    "Depth": "depth",
    "Normals": "normalbae",
    "Pose": "openpose",
    "Face": "mediapipe_face",  # ControlNetMediaPipeFace's map (A1111's mediapipe_face)
    "Segmentation": "seg",
    "Tile / blur": "tile",
    "Colour": "color",
    "Shuffle": "shuffle",
}
# Drawn as strokes: the model wants white lines on black.
LINE_TYPES = {"scribble", "lineart", "lineart_anime", "softedge", "canny", "mlsd"}
# Not a map: the layer's picture is the reference (IP-Adapter), taken whole from the layer.
REFERENCE_TYPES = {"ip-adapter", "ip-adapter-style", "ip-adapter-composition"}
# The T2I colour adapter reads a coarse colour grid (A1111's t2ia_color_grid preprocessor).
PREPROCESSORS = {"color": "t2ia_color_grid"}


@dataclass(frozen=True)
class Defaults:
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


# A new mark's weight and range: Krita AI Diffusion's middle preset of its three
# (presets/control.json, "all" architectures). Reference 0.8 over 0.2-0.8 (the picture's
# content guides without fixing its layout), Style 0.8 over 0.2-1.0 (style blocks to the
# end), Composition 0.8 over 0.0-0.8 (the layout is set early). ControlNets keep A1111's
# unit defaults (1.0, 0-1).
DEFAULTS = {
    "ip-adapter": Defaults(0.8, 0.2, 0.8),
    "ip-adapter-style": Defaults(0.8, 0.2, 1.0),
    "ip-adapter-composition": Defaults(0.8, 0.0, 0.8),
}


def defaults(wire_type: str) -> Defaults:
    return DEFAULTS.get(wire_type, Defaults())


@dataclass(frozen=True)
class Offer:
    """One docker type and whether the backend can run it for the chosen model."""

    label: str
    type: str
    available: bool
    why: str = ""  # for the tooltip when it is not


def offers(welcome, family: str) -> list[Offer]:
    """Every docker type, marked unavailable where the backend's welcome says it has no
    file for the model's family (`control_types` / `control_missing`). A backend that does
    not say (an older one), or a family it does not list, leaves everything offered: the
    backend still refuses a job it cannot run, with a clear error. A family that runs no
    control units has every type unavailable, with the backend's reason."""
    refused = refusal(family_info(family, welcome), "controlnet")
    if refused:
        return [Offer(label, wire, False, refused) for label, wire in TYPES.items()]
    served = welcome.control_types.get(family) if welcome is not None else None
    if served is None:
        return [Offer(label, wire, True) for label, wire in TYPES.items()]
    missing = welcome.control_missing.get(family, {})
    name = family_label(family)
    out = []
    for label, wire in TYPES.items():
        if wire in served:
            out.append(Offer(label, wire, True))
            continue
        why = str(missing.get(wire) or f"the backend has no {wire} model")
        out.append(Offer(label, wire, False, f"Not available for {name} models: {why}"))
    return out


@dataclass
class ControlMark:
    type: str  # wire type, a value of TYPES
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    # Switched off: still a control layer (its type and settings kept, the layer shown),
    # but left out of jobs (Krita AI Diffusion's per-layer toggle). Marks stored before
    # the switch existed load as on.
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError("control enabled must be true or false")
        if self.type not in TYPES.values():
            raise ValueError(f"unknown control type {self.type!r}")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError("control start/end must satisfy 0 <= start <= end <= 1")
        if not 0.0 <= self.weight <= 2.0:
            raise ValueError("control weight must be within 0..2")


def dump_marks(marks: dict[str, ControlMark]) -> bytes:
    return json.dumps({k: asdict(v) for k, v in sorted(marks.items())}).encode()


def load_marks(data: bytes | None) -> dict[str, ControlMark]:
    """Marks from an annotation; a damaged entry is dropped rather than blocking the docker."""
    if not data:
        return {}
    try:
        raw = json.loads(bytes(data).decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    out = {}
    if isinstance(raw, dict):
        for key, val in raw.items():
            try:
                out[str(key)] = ControlMark(**val)
            except (TypeError, ValueError):
                continue
    return out


def switched(mark: ControlMark, on: bool) -> ControlMark:
    """The same mark switched on or off, everything else kept."""
    return replace(mark, enabled=on)


def in_use(marks: dict[str, ControlMark]) -> dict[str, ControlMark]:
    """The marks that go with a job: those switched on."""
    return {node_id: m for node_id, m in marks.items() if m.enabled}


def control_image(rgba: np.ndarray, wire_type: str) -> np.ndarray:
    """The RGB image a ControlNet of this type expects, from a layer's RGBA pixels.

    Line types: a sketch on a transparent layer is its opacity (white strokes on black);
    an opaque light sketch (dark lines on paper) is inverted. Reference: the layer's
    picture (reference_image). Everything else (depth, normals, pose, face, segmentation,
    tile, colour) is used as painted, over black.
    """
    if wire_type in REFERENCE_TYPES:
        return reference_image(rgba, _label(wire_type))
    if wire_type in LINE_TYPES:
        alpha = rgba[:, :, 3]
        if alpha.min() < 255:
            grey = alpha
        else:
            luma = rgba[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            grey = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
            if grey.mean() > 127:
                grey = 255 - grey
        return np.repeat(grey[:, :, None], 3, axis=2)
    return flatten_rgb(rgba, background=0)


def _label(wire_type: str) -> str:
    return next(label for label, wire in TYPES.items() if wire == wire_type)


def reference_image(rgba: np.ndarray, label: str = "Reference") -> np.ndarray:
    """A reference picture: the layer's painted content, cropped to where it has pixels
    and laid over white, in colour. As in Krita AI Diffusion the whole layer counts, not
    the part under the generated area (the controller reads it over the canvas)."""
    bounds = content_bounds(rgba[:, :, 3]) if rgba.shape[2] == 4 else None
    if rgba.shape[2] == 4 and bounds is None:
        raise PlanError(f"A {label} layer is empty: paint or paste the reference picture.")
    if bounds is not None:
        x, y, w, h = bounds
        rgba = rgba[y : y + h, x : x + w]
    return flatten_rgb(rgba, background=255)


def control_unit(mark: ControlMark, rgba: np.ndarray) -> ControlUnit:
    return ControlUnit(
        type=mark.type,
        image=control_image(rgba, mark.type),
        weight=mark.weight,
        start=mark.start,
        end=mark.end,
        preprocessor=PREPROCESSORS.get(mark.type, "none"),
    )
