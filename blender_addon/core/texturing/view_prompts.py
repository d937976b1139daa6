"""Which side of an object a camera sees, as a phrase added to that view's prompt.

Image models draw a "back view" or "top view" far more consistently when told so, which
is what texturing papers and StableGen do per camera. The side is judged from the
direction the camera looks from (the reverse of its viewing direction, so that framing
and lens shift do not matter) against the object's own axes: Blender's front is -Y and
up is +Z, in the object's local frame, so a rotated character keeps its own front.

Thresholds (degrees, documented in ViewThresholds):
- elevation above the object's horizon of `top_deg` or more: top view; of `-bottom_deg`
  or less: bottom view (60: a camera must look down more steeply than it looks across);
- otherwise by azimuth from the front axis: within `front_deg` (45) front view, beyond
  180 - `back_deg` (135) back view, in between side view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRONT = "front"
SIDE = "side"
BACK = "back"
TOP = "top"
BOTTOM = "bottom"
SIDES = (FRONT, SIDE, BACK, TOP, BOTTOM)


@dataclass(frozen=True)
class ViewPhrases:
    """The text appended for each side; an empty phrase adds nothing."""

    front: str = "front view"
    side: str = "side view"
    back: str = "back view"
    top: str = "top view"
    bottom: str = "bottom view"

    def for_side(self, side: str) -> str:
        if side not in SIDES:
            raise ValueError(f"no such side: {side!r}")
        return getattr(self, side)


@dataclass(frozen=True)
class ViewThresholds:
    top_deg: float = 60.0  # elevation at or above which a view is from the top
    bottom_deg: float = 60.0  # depression at or beyond which it is from the bottom
    front_deg: float = 45.0  # azimuth from the front axis within which it is the front
    back_deg: float = 45.0  # azimuth from the back axis within which it is the back


@dataclass(frozen=True)
class ObjectFrame:
    """The object's front and up directions in world space (unit, perpendicular)."""

    front: np.ndarray
    up: np.ndarray


WORLD_FRAME = ObjectFrame(np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def object_frame(matrix_world: np.ndarray | None) -> ObjectFrame:
    """The frame of one object from its world matrix (local -Y front, local +Z up); the
    world's own (Blender's Front view) without one, as for several objects at once,
    whose fronts need not agree."""
    if matrix_world is None:
        return WORLD_FRAME
    m = np.asarray(matrix_world, np.float64)[:3, :3]
    up = m @ [0.0, 0.0, 1.0]
    front = m @ [0.0, -1.0, 0.0]
    if np.linalg.norm(up) < 1e-12 or np.linalg.norm(front) < 1e-12:
        return WORLD_FRAME  # a zero scale has no axes to speak of
    up = up / np.linalg.norm(up)
    # Shear or non-uniform scale can tilt the axes; front is made perpendicular to up.
    front = front - (front @ up) * up
    n = np.linalg.norm(front)
    return WORLD_FRAME if n < 1e-9 else ObjectFrame(front / n, up)


def view_side(
    view_dir: np.ndarray, frame: ObjectFrame = WORLD_FRAME, t: ViewThresholds | None = None
) -> str:
    """FRONT, SIDE, BACK, TOP or BOTTOM for a camera looking along `view_dir` (world)."""
    t = t or ViewThresholds()
    d = -np.asarray(view_dir, np.float64)  # from the object toward the camera
    d = d / max(float(np.linalg.norm(d)), 1e-12)
    elevation = math.degrees(math.asin(float(np.clip(d @ frame.up, -1.0, 1.0))))
    if elevation >= t.top_deg:
        return TOP
    if elevation <= -t.bottom_deg:
        return BOTTOM
    horizontal = d - (d @ frame.up) * frame.up
    n = float(np.linalg.norm(horizontal))
    cos_az = float(horizontal @ frame.front) / n if n > 1e-12 else 1.0
    azimuth = math.degrees(math.acos(float(np.clip(cos_az, -1.0, 1.0))))
    if azimuth <= t.front_deg:
        return FRONT
    if azimuth >= 180.0 - t.back_deg:
        return BACK
    return SIDE


def with_view(prompt: str, phrase: str) -> str:
    """`prompt` with ", phrase" at its end (after any LoRA tags or weights, which stay as
    written: the phrase is one more plain chunk of the last sub-prompt)."""
    phrase = phrase.strip()
    if not phrase:
        return prompt
    body = prompt.rstrip().rstrip(",").rstrip()
    return f"{body}, {phrase}" if body else phrase


def view_prompt(
    prompt: str,
    view_dir: np.ndarray,
    frame: ObjectFrame,
    phrases: ViewPhrases | None,
    thresholds: ViewThresholds | None = None,
) -> str:
    """The prompt for one view: with the phrase of the side it sees, or as it is when
    view-aware prompts are off (`phrases` None)."""
    if phrases is None:
        return prompt
    return with_view(prompt, phrases.for_side(view_side(view_dir, frame, thresholds)))
