"""Train a LoRA from renders of a Blender collection: the turntable's cameras, each view's
caption and the train_lora job that carries the renders (plain Python, no bpy).

A turntable is what artists shoot to teach a model one object or character: the object seen
all the way round, each picture captioned with the trigger word, what the object is and the
side seen ("mychar, robot, back view"), so that the side words stay promptable and the rest
of the look goes into the trigger word. The views go evenly round in azimuth, starting at
Blender's front (-Y) as Front view does, alternating between the elevations given, at the
distance that frames the collection's bounding sphere in the camera's narrower field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.lora_training import (
    MAX_CAPTION,
    LoraTraining,
    TrainingPicture,
)
from dreamwire.shared.protocol import training_picture_limit

from .tasks import ActionError
from .texturing.camera_placement import framing_distance
from .texturing.multiview import orbit_positions
from .texturing.view_prompts import TOP, WORLD_FRAME, ViewPhrases, view_side

MIN_VIEWS = 2  # one picture teaches a pose, not an object
# A view looking down this steeply (but not yet a top view) is captioned "from above" too:
# the high-angle shots of a turntable, which artists tag apart from the level ones.
ABOVE_DEG = 30.0
PHRASES = ViewPhrases(top="from above", bottom="from below")
MAX_NAMES = 8  # object names in a caption: past a few, names drown the trigger word


@dataclass(frozen=True)
class TurntableView:
    position: np.ndarray  # the camera's world position
    target: np.ndarray  # the point it looks at (the collection's centre)
    azimuth_deg: float  # from the front (-Y), counter-clockwise seen from above
    elevation_deg: float
    hint: str  # "front view", "side view, from above" ...


@dataclass
class TrainingRequest:
    """The panel's training settings."""

    name: str  # the LoRA's name: <lora:name:1>
    trigger: str  # the word every caption starts with
    steps: int = 200
    views: int = 8
    elevations: tuple[float, ...] = (15.0, 35.0)
    size: int = 512  # the renders' side, the training resolution
    repeats: int = 10  # kohya's folder repeats: a turntable is a small dataset
    network_dim: int = 8
    learning_rate: float = 1e-4
    model: str = ""
    seed: int = -1
    sample_steps: int = 20  # the result's sample picture
    cfg: float = 7.0


def bounds_of(corners: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the box around `corners` (N x 3, world) and the radius enclosing them all."""
    pts = np.asarray(corners, np.float64).reshape(-1, 3)
    if len(pts) == 0:
        raise ActionError("The collection has no objects to render.")
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    return centre, max(float(np.linalg.norm(pts - centre, axis=1).max()), 1e-3)


def view_hint(azimuth_deg: float, elevation_deg: float) -> str:
    """How artists caption a turntable shot: its side, and "from above" when high."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    # The direction the camera looks in: from its orbit position toward the centre.
    look = -np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])
    side = view_side(look, WORLD_FRAME)
    hint = PHRASES.for_side(side)
    if side != TOP and elevation_deg >= ABOVE_DEG:
        hint = f"{hint}, {PHRASES.top}"
    return hint


def turntable(
    corners: np.ndarray, views: int, fov_deg: float, elevations: tuple[float, ...] = (15.0,)
) -> list[TurntableView]:
    """`views` cameras round the bounds of `corners`, evenly in azimuth from the front, the
    elevations taken in turn, each at the distance that frames the bounding sphere."""
    if views < MIN_VIEWS:
        raise ActionError(f"A turntable needs at least {MIN_VIEWS} views, got {views}.")
    if not elevations:
        raise ValueError("at least one elevation")
    centre, radius = bounds_of(corners)
    distance = framing_distance(radius, fov_deg)
    out = []
    for i in range(views):
        azimuth = 360.0 * i / views
        elevation = float(elevations[i % len(elevations)])
        pos = orbit_positions(centre, distance, 1, elevation, start_deg=azimuth)[0]
        out.append(TurntableView(pos, centre, azimuth, elevation, view_hint(azimuth, elevation)))
    return out


def readable_name(name: str) -> str:
    """A Blender name as a caption word: "Robot_Arm.001" -> "robot arm"."""
    base = re.sub(r"\.\d{3,}$", "", name)
    return " ".join(re.sub(r"[_\-.]+", " ", base).split()).lower()


def subject(collection: str, objects: list[str]) -> str:
    """The caption's description of what is shown: the collection's name, then its objects'
    (each once, the first few), skipping any the collection's name already says."""
    words: list[str] = []
    for n in [collection, *objects]:
        w = readable_name(n)
        if w and w not in words:
            words.append(w)
    return ", ".join(words[: MAX_NAMES + 1])


def caption(trigger: str, what: str, hint: str) -> str:
    text = ", ".join(p for p in (trigger.strip(), what, hint) if p)
    return text[:MAX_CAPTION]


def check_request(req: TrainingRequest, objects: list[str], welcome_limits: dict | None) -> None:
    """Refuse what cannot train before anything renders."""
    if not objects:
        raise ActionError("The collection has no mesh objects to render.")
    if not req.name.strip():
        raise ActionError("Give the LoRA a name.")
    if not req.trigger.strip():
        raise ActionError("Give the LoRA a trigger word (every caption starts with it).")
    if req.views < MIN_VIEWS:
        raise ActionError(f"A turntable needs at least {MIN_VIEWS} views, got {req.views}.")
    cap = training_picture_limit(welcome_limits)
    if req.views > cap:
        raise ActionError(
            f"{req.views} views are more pictures than one job may carry ({cap} on this "
            "backend); use fewer views."
        )


def training_job(
    req: TrainingRequest, renders: list[np.ndarray], captions: list[str], what: str
) -> Job:
    """The train_lora job carrying the renders (one caption each); its prompt, the sample
    picture's, is the caption without a side, so the sample shows what the LoRA learnt."""
    if len(renders) != len(captions):
        raise ValueError("one caption per render")
    pictures = [
        TrainingPicture(image=np.ascontiguousarray(img[..., :3]), caption=c)
        for img, c in zip(renders, captions, strict=True)
    ]
    return Job(
        mode=JobMode.TRAIN_LORA,
        model=req.model,
        prompt=caption(req.trigger, what, ""),
        steps=req.sample_steps,
        cfg=req.cfg,
        width=req.size,
        height=req.size,
        seed=req.seed,
        tag=f"train {req.name.strip()}",
        train_lora=LoraTraining(
            name=req.name.strip(),
            network_dim=req.network_dim,
            learning_rate=req.learning_rate,
            max_train_steps=req.steps,
            resolution=req.size,
            pictures=pictures,
            repeats=req.repeats,
        ),
    )
