"""One LoRA training run from a folder to a file in the LoRA folder: read and check the
dataset (before any model loads), train on the loaded model, write kohya's format."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode

from .dataset import Dataset, read_dataset
from .kohya_file import TrainingRecord, flavour, kohya_metadata, kohya_tensors, save_lora
from .loop import Checkpointing, StepReport, train_lora
from .options import LoraTrainOptions
from .request import TrainRequest
from .state import RunIdentity, TrainState, load_state, state_path

# The server log says where a stopped or restarted run went on from (operators, tests).
log = logging.getLogger("dreamwire.training")


@dataclass(frozen=True)
class TrainedLora:
    path: Path
    losses: list[float]  # this run's steps (a resumed run's only)
    first_step: int = 1  # the step `losses[0]` belongs to


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


def _identity(options: LoraTrainOptions, dataset: Dataset, model_hash: str) -> RunIdentity:
    return RunIdentity(
        seed=options.seed,
        network_dim=options.network_dim,
        network_alpha=float(options.network_alpha),
        learning_rate=options.learning_rate,
        resolution=options.resolution,
        max_grad_norm=options.max_grad_norm,
        network_train_unet_only=options.network_train_unet_only,
        images=tuple(
            f"{img.repeats}|{img.path.relative_to(dataset.root).as_posix()}|{img.caption}"
            for img in dataset.images
        ),
        base_model_hash=model_hash,
    )


def _saved_state(request: TrainRequest, path: Path, identity: RunIdentity) -> TrainState | None:
    """The state to go on from, or None for a fresh run; a stopped run's state is never
    overwritten unasked."""
    name = path.stem
    file = state_path(path)
    if not file.is_file():
        if request.resume:
            raise DreamwireError(
                ErrorCode.INVALID_JOB,
                f"there is no saved state of a LoRA training named {name!r} to resume ({file})",
            )
        return None
    state = load_state(file)
    if not (request.resume or (request.job_id and state.job_id == request.job_id)):
        if request.overwrite:
            return None
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"a stopped training of {name!r} saved its state at step {state.step}: resume it, "
            "or overwrite to start over",
        )
    changed = identity.differences(state.identity)
    if changed:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"cannot resume {name!r}: {', '.join(changed)} differ from the stopped run's "
            "(the dataset, the base model and the options but steps must stay as they were)",
        )
    return state


def run_training(
    engine, request: TrainRequest, on_step: Callable[[StepReport], None] | None = None
) -> TrainedLora:
    path = output_path(request)
    dataset = read_dataset(request.data)
    model = engine.load(request.model)
    spec = spec_for(model.family)
    if not spec.support.train_lora:  # `dreamwire train-lora` has no plan: refused here
        raise spec.refusal("train_lora")
    identity = _identity(request.options, dataset, model.short_hash)
    resume = _saved_state(request, path, identity)
    if resume is not None:
        log.info("training %s resumes after step %d", path.stem, resume.step)
    checkpointing = Checkpointing(
        state_path(path), identity, request.save_every_n_steps, request.job_id
    )
    started = time.time()
    result = train_lora(model.components, dataset, request.options, on_step, resume, checkpointing)
    first = 1 if resume is None else resume.step + 1
    record = TrainingRecord(
        output_name=path.stem,
        base_model=model.name,
        base_model_hash=model.short_hash,
        started_at=started,
        finished_at=time.time(),
        steps_done=first - 1 + len(result.losses),
    )
    names = flavour(model.family, model.components["unet"].config)
    tensors = kohya_tensors(result.lora_state, request.options.network_alpha, names)
    save_lora(path, tensors, kohya_metadata(request.options, dataset, record, names))
    # The LoRA is whole: the state of the run that made it has done its work.
    state_path(path).unlink(missing_ok=True)
    return TrainedLora(path, result.losses, first)
