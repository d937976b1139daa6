"""The settings of a LoRA training job (JobMode.TRAIN_LORA), under kohya_ss's names and with
its defaults.

`data` names a folder of pictures (kohya's layout: `10_mychar/` subfolders, `.txt`
captions) inside a model root's `training/` folder, as a model name names a file inside a
model folder: a relative path, never absolute, never through `..`. The LoRA is written to
the first model root's LoRA folder as `<name>.safetensors`. The job's own prompt, negative
prompt, seed, steps, CFG and size are those of the sample pictures; its seed is the
training's seed too.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DreamwireError, ErrorCode
from .job_fields import FieldCheck

MAX_TRAIN_STEPS = 1_000_000
MAX_RANK = 1024
MAX_RESOLUTION = 4096


@dataclass
class LoraTraining:
    data: str  # a folder inside a model root's training/ folder
    name: str  # the LoRA's name: <lora:name:1>
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


def check_lora_training(t: object, job_id: str) -> None:
    """Types and ranges, naming the field; the folder and the names are the backend's."""
    f = FieldCheck(job_id)
    f.kind("train_lora", t, LoraTraining)
    ft = f.nested("train_lora.")
    for name in ("data", "name"):
        ft.text(name, getattr(t, name))
        if not getattr(t, name).strip():
            raise ft.fail(name, "a name", getattr(t, name), ErrorCode.INVALID_JOB)
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


def lora_training_from_wire(data: Any) -> LoraTraining:
    """A LoraTraining from its JSON object; unknown fields are refused, not dropped."""
    if not isinstance(data, dict):
        raise DreamwireError(ErrorCode.INVALID_JOB, "train_lora must be an object")
    extra = set(data) - set(LoraTraining.__dataclass_fields__)
    if extra:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"unknown LoraTraining fields: {sorted(extra)}")
    missing = {"data", "name"} - set(data)
    if missing:
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"train_lora needs {', '.join(sorted(missing))}"
        )
    return LoraTraining(**data)
