"""What one training run is asked to do: where the pictures are, the LoRA's name and folder,
the base model, the options, and the run-level kohya settings (resume, overwrite, save every
N steps). Light to import (no torch): the command line builds its arguments from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .options import LoraTrainOptions, checked, kohya, kohya_options


@dataclass(frozen=True)
class TrainRequest:
    data: Path
    name: str  # the LoRA's name: <lora:name:w>
    lora_dir: Path  # models/Lora of a model root
    model: str = ""  # checkpoint name; "" = the library's default
    options: LoraTrainOptions = LoraTrainOptions()
    overwrite: bool = kohya(False, "replace a LoRA of that name (or a stopped run's state)")
    # Go on from the saved state of a stopped run of this name (state.py); its own job's
    # restart (same job_id) goes on without asking.
    resume: bool = kohya(False, "go on from the state a stopped run of NAME saved")
    save_every_n_steps: int = kohya(
        0, "save the run's state every N steps too (it is always saved when stopped)"
    )
    job_id: str = ""

    def __post_init__(self) -> None:
        if self.save_every_n_steps < 0:
            raise DreamwireError(
                ErrorCode.INVALID_JOB,
                f"save_every_n_steps must be 0 or more (got {self.save_every_n_steps})",
            )

    @classmethod
    def from_kohya(cls, values: Mapping[str, Any], **place: Any) -> TrainRequest:
        """A request from kohya-named values, options and run settings alike (the table in
        options.py); `place` gives data, name, lora_dir, model and job_id."""
        own = [o.name for o in kohya_options(cls)]
        options_names = [o.name for o in kohya_options(LoraTrainOptions)]
        options = LoraTrainOptions.from_kohya(
            {k: v for k, v in values.items() if k not in own}, known=own
        )
        run = checked(cls, {k: v for k, v in values.items() if k in own}, known=options_names)
        return cls(options=options, **run, **place)
