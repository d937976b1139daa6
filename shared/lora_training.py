"""The settings of a LoRA training job (JobMode.TRAIN_LORA), under kohya_ss's names and with
its defaults.

`data` names a folder of pictures (kohya's layout: `10_mychar/` subfolders, `.txt`
captions) inside a model root's `training/` folder, as a model name names a file inside a
model folder: a relative path, never absolute, never through `..`. Or the job carries its
pictures (`pictures`, each with its caption; a host's layers or renders), which the backend
writes into a kohya-layout folder of its own data folder. The LoRA is written to
the first model root's LoRA folder as `<name>.safetensors`. The job's own prompt, negative
prompt, seed, steps, CFG and size are those of the sample pictures; its seed is the
training's seed too.

Stdlib and numpy only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DreamwireError, ErrorCode
from .image_check import check_image
from .job_fields import FieldCheck

MAX_TRAIN_STEPS = 1_000_000
MAX_RANK = 1024
MAX_RESOLUTION = 4096
# Pictures a job may carry: kohya's LoRA datasets are tens of pictures. Each is one binary
# frame, so the wire's `limits.max_images` (32 by default) and `max_message_bytes` bound a
# job first; this cap holds whatever a backend's limits are raised to.
MAX_TRAINING_PICTURES = 500
MAX_CAPTION = 4000  # characters
MAX_REPEATS = 1000


@dataclass
class TrainingPicture:
    image: np.ndarray  # H x W x 3|4 uint8 (an alpha channel is dropped, as kohya does)
    caption: str = ""  # its `.txt`; "": the LoRA's name is its caption (the folder's token)


@dataclass
class LoraTraining:
    data: str = ""  # a folder inside a model root's training/ folder ("": `pictures`)
    name: str = ""  # the LoRA's name: <lora:name:1>
    network_dim: int = 8  # rank
    network_alpha: float = 1.0
    learning_rate: float = 1e-4
    max_train_steps: int = 1600
    resolution: int = 512
    max_grad_norm: float = 1.0  # 0: no clipping
    # Train the UNet's LoRA only; off (kohya's default) trains the text encoders' too.
    network_train_unet_only: bool = False
    # Save the run's state every N steps (0: only when it stops before its end).
    save_every_n_steps: int = 0
    # A sample picture with the job's prompt and seed every N steps (0: none), sent as the
    # progress message's preview; the result's picture is the sample after the last step.
    sample_every_n_steps: int = 0
    resume: bool = False  # go on from the state a stopped run of `name` saved
    overwrite: bool = False  # replace a LoRA of that name (or a stopped run's state)
    # The pictures themselves, in place of `data`; each seen `repeats` times an epoch (the
    # kohya folder `<repeats>_<name>` the backend writes them into).
    pictures: list[TrainingPicture] = field(default_factory=list)
    repeats: int = 1


def check_lora_training(t: object, job_id: str) -> None:
    """Types and ranges, naming the field; the folder and the names are the backend's."""
    f = FieldCheck(job_id)
    f.kind("train_lora", t, LoraTraining)
    ft = f.nested("train_lora.")
    ft.text("data", t.data)
    ft.text("name", t.name)
    if not t.name.strip():
        raise ft.fail("name", "a name", t.name, ErrorCode.INVALID_JOB)
    ft.listed("pictures", t.pictures)
    if bool(t.data.strip()) == bool(t.pictures):
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            "train_lora needs either data (a training folder's name) or pictures, not both",
            job_id,
        )
    _check_pictures(ft, t.pictures, job_id)
    ft.whole("repeats", t.repeats, 1, MAX_REPEATS)
    ft.whole("network_dim", t.network_dim, 1, MAX_RANK)
    ft.number("network_alpha", t.network_alpha, 1e-6, float(MAX_RANK))
    ft.number("learning_rate", t.learning_rate, 1e-12, 10.0)
    ft.whole("max_train_steps", t.max_train_steps, 1, MAX_TRAIN_STEPS)
    ft.whole("resolution", t.resolution, 8, MAX_RESOLUTION)
    if t.resolution % 8:
        raise ft.fail("resolution", "a multiple of 8", t.resolution, ErrorCode.INVALID_JOB)
    ft.number("max_grad_norm", t.max_grad_norm, 0.0, 1e6)
    ft.whole("save_every_n_steps", t.save_every_n_steps, 0, MAX_TRAIN_STEPS)
    ft.whole("sample_every_n_steps", t.sample_every_n_steps, 0, MAX_TRAIN_STEPS)
    ft.flag("network_train_unet_only", t.network_train_unet_only)
    ft.flag("resume", t.resume)
    ft.flag("overwrite", t.overwrite)


def _check_pictures(ft: FieldCheck, pictures: list, job_id: str) -> None:
    if len(pictures) > MAX_TRAINING_PICTURES:
        raise DreamwireError(
            ErrorCode.LIMIT_EXCEEDED,
            f"train_lora.pictures: at most {MAX_TRAINING_PICTURES}, got {len(pictures)}",
            job_id,
        )
    for i, p in enumerate(pictures):
        where = f"pictures[{i}]"
        ft.kind(where, p, TrainingPicture)
        check_image(p.image, f"train_lora.{where}.image", job_id)
        if p.image.shape[2] == 1:  # a mask's shape: no picture to train on
            raise DreamwireError(
                ErrorCode.INVALID_IMAGE,
                f"train_lora.{where}.image must be RGB or RGBA, got one channel",
                job_id,
            )
        ft.text(f"{where}.caption", p.caption)
        if len(p.caption) > MAX_CAPTION:
            raise ft.fail(
                f"{where}.caption",
                f"at most {MAX_CAPTION} characters",
                p.caption,
                ErrorCode.INVALID_JOB,
            )


def _picture_from_wire(data: Any, i: int, arr: Callable[[Any], Any]) -> TrainingPicture:
    if not isinstance(data, dict):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"train_lora.pictures[{i}] must be an object")
    extra = set(data) - set(TrainingPicture.__dataclass_fields__)
    if extra or "image" not in data:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"train_lora.pictures[{i}] is {{image, caption}}, got {sorted(data)}",
        )
    return TrainingPicture(**{**data, "image": arr(data["image"])})


def lora_training_from_wire(data: Any, arr: Callable[[Any], Any]) -> LoraTraining:
    """A LoraTraining from its JSON object, its pictures' `{"$array": i}` resolved by `arr`;
    unknown fields are refused, not dropped."""
    if not isinstance(data, dict):
        raise DreamwireError(ErrorCode.INVALID_JOB, "train_lora must be an object")
    extra = set(data) - set(LoraTraining.__dataclass_fields__)
    if extra:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"unknown LoraTraining fields: {sorted(extra)}")
    if "name" not in data or not ({"data", "pictures"} & set(data)):
        raise DreamwireError(ErrorCode.INVALID_JOB, "train_lora needs name, and data or pictures")
    pictures = data.get("pictures", [])
    if not isinstance(pictures, list):
        raise DreamwireError(ErrorCode.INVALID_JOB, "train_lora.pictures must be a list")
    return LoraTraining(
        **{**data, "pictures": [_picture_from_wire(p, i, arr) for i, p in enumerate(pictures)]}
    )
