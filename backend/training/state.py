"""A training run's saved state (kohya's `--save_state` / `--resume` idea): the LoRA weights,
AdamW's moments, the step count, the draw generator's state and the place in the epoch's
shuffled order, so a resumed run takes exactly the steps the stopped one would have taken.

One `.safetensors`-format file `NAME.train-state` beside where `NAME.safetensors` will go:
its suffix keeps it out of the LoRA listings, and it is written through a temporary file and
renamed, so a crash while saving leaves the previous state whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .layout import PARTIAL_SUFFIX, STATE_SUFFIX

_FORMAT = "dreamwire-lora-train-state/1"


@dataclass(frozen=True)
class RunIdentity:
    """What must be the same for a saved state to go on: the settings the draws and the
    weights' shapes depend on, the dataset's images in order, the base model. The step
    count may grow (a resumed run may train longer)."""

    seed: int
    network_dim: int
    network_alpha: float
    learning_rate: float
    resolution: int
    max_grad_norm: float
    images: tuple[str, ...]  # "<repeats>|<path relative to the dataset>|<caption>"
    base_model_hash: str
    # The states saved before text encoders trained are of UNet-only runs.
    network_train_unet_only: bool = True

    def to_json(self) -> str:
        return json.dumps({**vars(self), "images": list(self.images)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunIdentity:
        data = json.loads(text)
        return cls(**{**data, "images": tuple(data["images"])})

    def differences(self, other: RunIdentity) -> list[str]:
        return [k for k in vars(self) if getattr(self, k) != getattr(other, k)]


@dataclass
class TrainState:
    step: int  # steps done
    lora: dict[str, torch.Tensor]  # peft names, float32 on the CPU
    # AdamW's per-parameter state, in the order of the trained parameters: step, exp_avg,
    # exp_avg_sq (torch's names).
    optimizer: list[dict[str, torch.Tensor]]
    rng: torch.Tensor  # the draw generator's get_state()
    order: list[int]  # indices into Dataset.epoch() still to come this epoch (popped last first)
    identity: RunIdentity
    job_id: str = ""  # the queue job that saved it: its own restart resumes without asking


def state_path(lora_path: Path) -> Path:
    return lora_path.with_name(lora_path.stem + STATE_SUFFIX)


def save_state(path: Path, state: TrainState) -> Path:
    tensors = {f"lora.{k}": v.detach().float().cpu().contiguous() for k, v in state.lora.items()}
    for i, slots in enumerate(state.optimizer):
        for name, value in slots.items():
            tensors[f"optimizer.{i}.{name}"] = value.detach().cpu().contiguous()
    tensors["rng"] = state.rng.cpu().contiguous()
    tensors["order"] = torch.tensor(state.order or [-1], dtype=torch.int64)
    meta = {
        "format": _FORMAT,
        "step": str(state.step),
        "order_len": str(len(state.order)),
        "optimizer_params": str(len(state.optimizer)),
        "identity": state.identity.to_json(),
        "job_id": state.job_id,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_state(path: Path) -> TrainState:
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT} file")
            names = f.keys()  # a safe_open handle is not iterable
            tensors = {k: f.get_tensor(k) for k in names}
        count = int(meta["optimizer_params"])
        optimizer: list[dict[str, torch.Tensor]] = [{} for _ in range(count)]
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                optimizer[int(index)][name] = value
        return TrainState(
            step=int(meta["step"]),
            lora={k[len("lora.") :]: v for k, v in tensors.items() if k.startswith("lora.")},
            optimizer=optimizer,
            rng=tensors["rng"],
            order=tensors["order"][: int(meta["order_len"])].tolist(),
            identity=RunIdentity.from_json(meta["identity"]),
            job_id=meta.get("job_id", ""),
        )
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"the saved training state {path} cannot be read: {exc}"
        ) from exc
