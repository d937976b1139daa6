"""A LoRA trained from the document's layers: which layers, their captions, the settings'
checks and the `train_lora` job (shared/lora_training.py, PROTOCOL.md "LoRA training jobs").

Each chosen layer is one picture (its pixels over the canvas, or over the selection's
bounds), captioned kohya's way: the trigger word, then what the layer's name says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.families import FamilyInfo
from dreamwire.shared.family_support import check_job
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import MAX_TRAIN_STEPS, LoraTraining, TrainingPicture

from .prompt_regions import LayerInfo

MIN_PICTURES = 2  # one picture teaches the LoRA that picture, not a subject
DEFAULT_RANK = 8  # kohya's network_dim default
MAX_RANK = 128  # beyond this a LoRA is as large as a checkpoint's attention weights
MIN_RESOLUTION = 64
MAX_NAME = 100
# Characters a file name cannot hold on Windows (the LoRA folder may be shared with A1111
# there), plus the path separators: the name is one file in the LoRA folder, never a path.
_BAD_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
# A layer's default name says nothing about the picture: no caption words from it.
_DEFAULT_LAYER = re.compile(r"^(paint layer|layer|background|copy of .*)\s*\d*$", re.IGNORECASE)


class TrainError(ValueError):
    """The layers or settings cannot train a LoRA; the message is for the artist."""


@dataclass(frozen=True)
class TrainRequest:
    name: str  # the LoRA's file stem: <lora:name:1>
    trigger: str  # the word that calls it up in a prompt
    steps: int = LoraTraining().max_train_steps  # kohya's default, as the backend's
    rank: int = DEFAULT_RANK


@dataclass(frozen=True)
class LayerPicture:
    name: str
    rgba: np.ndarray  # H x W x 4 uint8, the layer over the canvas (or the selection)


def check_name(name: str) -> str:
    """The LoRA's name as the LoRA folder takes it: one file name, no path."""
    text = name.strip()
    if not text:
        raise TrainError("Name the LoRA (it is used as <lora:name:1>).")
    if len(text) > MAX_NAME:
        raise TrainError(f"The LoRA's name is longer than {MAX_NAME} characters.")
    if _BAD_NAME.search(text) or text.startswith(".") or text.endswith("."):
        raise TrainError(
            f"The LoRA's name {text!r} cannot be a file name: no / \\ : * ? \" < > |, "
            "and no leading or trailing dot."
        )
    return text


def check_request(req: TrainRequest) -> TrainRequest:
    name = check_name(req.name)
    trigger = " ".join(req.trigger.split())
    if not trigger:
        raise TrainError("Give a trigger word: the word that calls the LoRA up in a prompt.")
    if "," in trigger:
        raise TrainError("The trigger word cannot hold a comma (captions are comma lists).")
    if not isinstance(req.steps, int) or not 1 <= req.steps <= MAX_TRAIN_STEPS:
        raise TrainError(f"Steps must be 1..{MAX_TRAIN_STEPS}, got {req.steps}.")
    if not isinstance(req.rank, int) or not 1 <= req.rank <= MAX_RANK:
        raise TrainError(f"Rank must be 1..{MAX_RANK}, got {req.rank}.")
    return TrainRequest(name, trigger, req.steps, req.rank)


def chosen_layers(selected: list[LayerInfo], top_level_paint: list[LayerInfo]) -> list[LayerInfo]:
    """The selected layers; with none selected, every visible top-level paint layer."""
    if selected:
        return selected
    return [x for x in top_level_paint if x.visible]


def caption(trigger: str, layer_name: str) -> str:
    """kohya's caption: the trigger word first, then the layer name's words as tags
    (`red_coat-2.png` -> `red coat`); a default layer name adds nothing."""
    words = re.sub(r"\.(png|jpe?g|webp|kra)$", "", layer_name.strip(), flags=re.IGNORECASE)
    words = " ".join(re.sub(r"[_\-]+", " ", words).split())
    words = re.sub(r"\s*\d+$", "", words) if not words.isdigit() else ""
    tags = [t.strip() for t in words.split(",") if t.strip()]
    if _DEFAULT_LAYER.match(words) or words.casefold() == trigger.casefold():
        tags = []
    return ", ".join([trigger, *tags])


def flatten(rgba: np.ndarray) -> np.ndarray:
    """The layer over white, RGB: kohya drops alpha, which would leave the colour under
    transparent pixels (black in Krita) as the picture's background."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def resolution(pictures: list[LayerPicture], native: int) -> int:
    """The training side: the family's native side, or the pictures' shorter side when
    they are smaller (kohya does not upscale into a bucket), a multiple of 8."""
    short = min(min(p.rgba.shape[:2]) for p in pictures)
    return max(MIN_RESOLUTION, min(native, short) // 8 * 8)


def build_job(
    req: TrainRequest,
    pictures: list[LayerPicture],
    model: str,
    info: FamilyInfo,
    limits: dict[str, int],
    sample_steps: int = 20,
    seed: int = -1,
) -> Job:
    """The train_lora job, refused (TrainError, the backend's words where it has them)
    before anything is sent."""
    req = check_request(req)
    try:
        check_job(Job(mode="train_lora", model=model), info)
    except DreamwireError as err:
        raise TrainError(err.message) from None
    most = P.training_picture_limit(limits)
    if len(pictures) < MIN_PICTURES:
        raise TrainError(
            f"Training needs at least {MIN_PICTURES} pictures: select two or more layers "
            f"(or show them, with none selected); got {len(pictures)}."
        )
    if len(pictures) > most:
        raise TrainError(
            f"The backend takes at most {most} pictures in one job; got {len(pictures)}. "
            "Select fewer layers, or put the pictures in a training folder on the backend."
        )
    side = resolution(pictures, info.family.resolution.native)
    return Job(
        mode="train_lora",
        prompt=req.trigger,  # the sample picture shows what the trigger word calls up
        model=model,
        steps=sample_steps,
        width=side,
        height=side,
        seed=seed,
        train_lora=LoraTraining(
            name=req.name,
            network_dim=req.rank,
            max_train_steps=req.steps,
            resolution=side,
            pictures=[
                TrainingPicture(flatten(p.rgba), caption(req.trigger, p.name)) for p in pictures
            ],
        ),
    )


def progress_text(step: int, total: int, loss: float | None = None) -> str:
    text = f"Training: step {step}/{total}"
    return text if loss is None else f"{text} · loss {loss:.4f}"


def result_text(name: str) -> str:
    return f"Trained LoRA {name!r}: {name}.safetensors in the LoRA folder; use <lora:{name}:1>."
