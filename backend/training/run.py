"""One LoRA training run from a folder to a file in the LoRA folder: read and check the
dataset (before any model loads), train on the loaded model, write kohya's format."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .dataset import read_dataset
from .kohya_file import TrainingRecord, kohya_metadata, kohya_tensors, save_lora
from .loop import StepReport, train_lora
from .options import LoraTrainOptions

# SD1.x only in this slice; SDXL and Flux need their own text-encoder set-up and key names.
TRAINABLE_FAMILIES = ("sd1",)


@dataclass(frozen=True)
class TrainRequest:
    data: Path
    name: str  # the LoRA's name: <lora:name:w>
    lora_dir: Path  # models/Lora of a model root
    model: str = ""  # checkpoint name; "" = the library's default
    options: LoraTrainOptions = LoraTrainOptions()
    overwrite: bool = False


@dataclass(frozen=True)
class TrainedLora:
    path: Path
    losses: list[float]


def output_path(request: TrainRequest) -> Path:
    from dreamwire.backend.library.library import check_name

    name = check_name(request.name).removesuffix(".safetensors")
    path = request.lora_dir / f"{name}.safetensors"
    if path.exists() and not request.overwrite:
        # An artist's earlier LoRA is never replaced by accident.
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"a LoRA named {name!r} already exists ({path}); pick another name",
        )
    return path


def run_training(
    engine, request: TrainRequest, on_step: Callable[[StepReport], None] | None = None
) -> TrainedLora:
    path = output_path(request)
    dataset = read_dataset(request.data)
    model = engine.load(request.model)
    if model.family not in TRAINABLE_FAMILIES:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"LoRA training runs on SD1.x models so far; {model.name} is {model.family}",
        )
    started = time.time()
    result = train_lora(model.components, dataset, request.options, on_step)
    record = TrainingRecord(
        output_name=path.stem,
        base_model=model.name,
        base_model_hash=model.short_hash,
        started_at=started,
        finished_at=time.time(),
        steps_done=len(result.losses),
    )
    tensors = kohya_tensors(result.lora_state, request.options.network_alpha)
    save_lora(path, tensors, kohya_metadata(request.options, dataset, record))
    return TrainedLora(path, result.losses)
