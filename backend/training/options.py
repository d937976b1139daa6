"""Training options under kohya_ss's names, with kohya_ss's defaults, in one table.

The fields of LoraTrainOptions (what the loop trains with) and the run-level fields of
run.TrainRequest that carry a `kohya(...)` mark are that table: `dreamwire train-lora`'s
arguments are built from it (add_kohya_arguments) and both the command line and a queue
job's `train_lora` settings become options through `from_kohya`, so an option is added in
one place and both ways in take it with the same checks and the same error code."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job_fields import FieldCheck

_MARK = "kohya"


@dataclass(frozen=True)
class KohyaField:
    """How a field shows on the command line beside its kohya name."""

    help: str
    short: str = ""  # Dreamwire's short flag (`rank` for `--rank`), if it has one


@dataclass(frozen=True)
class KohyaOption:
    """One row of the table: the field's kohya name, type, default and flag help."""

    name: str
    type: type  # int, float or bool
    default: int | float | bool
    mark: KohyaField


def kohya(default: int | float | bool, help: str, short: str = "") -> Any:
    """A dataclass field that is a kohya option (its name is kohya's)."""
    return field(default=default, metadata={_MARK: KohyaField(help, short)})


def kohya_options(cls: type) -> list[KohyaOption]:
    hints = typing.get_type_hints(cls)
    return [
        KohyaOption(f.name, hints[f.name], f.default, f.metadata[_MARK])
        for f in fields(cls)
        if _MARK in f.metadata
    ]


def checked(cls: type, values: Mapping[str, Any], known: Iterable[str] = ()) -> dict[str, Any]:
    """`values` checked against `cls`'s kohya options: unknown names (beyond `known`, the
    names another table takes) and wrong types are INVALID_JOB naming the option; floats
    given as whole numbers become floats."""
    table = {o.name: o for o in kohya_options(cls)}
    unknown = sorted(set(values) - set(table) - set(known))
    if unknown:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"unknown training option(s): {', '.join(unknown)} (known: {', '.join(table)})",
        )
    check = FieldCheck("")
    out: dict[str, Any] = {}
    for name, value in values.items():
        option = table.get(name)
        if option is None:
            continue
        if option.type is bool:
            check.flag(name, value)
        elif option.type is int:
            check.whole(name, value)
        else:
            check.number(name, value)
            value = float(value)
        out[name] = value
    return out


@dataclass(frozen=True)
class LoraTrainOptions:
    # kohya_ss GUI defaults: network_dim 8, network_alpha 1, learning_rate 1e-4,
    # max_train_steps 1600, resolution 512,512, train_batch_size 1, AdamW, constant LR,
    # max_grad_norm 1.0 (sd-scripts' and diffusers' scripts' default), text encoders
    # trained beside the UNet (network_train_unet_only off).
    network_dim: int = kohya(8, "the LoRA's rank", "rank")
    # The LoRA delta is scaled by alpha / rank.
    network_alpha: float = kohya(1.0, "the LoRA's alpha (delta scaled by alpha/rank)", "alpha")
    learning_rate: float = kohya(1e-4, "AdamW's learning rate", "lr")
    max_train_steps: int = kohya(1600, "training steps", "steps")
    resolution: int = kohya(512, "the square bucket's side in pixels")
    seed: int = kohya(0, "the draws' seed")
    max_grad_norm: float = kohya(1.0, "gradient clipping norm (0: no clipping)")
    network_train_unet_only: bool = kohya(
        False, "train the UNet's LoRA only, not the text encoders'"
    )

    def __post_init__(self) -> None:
        problems = []
        if self.network_dim < 1:
            problems.append(f"rank must be at least 1 (got {self.network_dim})")
        if self.network_alpha <= 0:
            problems.append(f"alpha must be positive (got {self.network_alpha})")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be positive (got {self.learning_rate})")
        if self.max_train_steps < 1:
            problems.append(f"steps must be at least 1 (got {self.max_train_steps})")
        # The VAE works on 8-pixel cells.
        if self.resolution < 8 or self.resolution % 8:
            problems.append(f"resolution must be a multiple of 8 (got {self.resolution})")
        if self.max_grad_norm < 0:
            problems.append(f"max_grad_norm must be 0 or more (got {self.max_grad_norm})")
        if problems:
            raise DreamwireError(ErrorCode.INVALID_JOB, "; ".join(problems))

    @classmethod
    def from_kohya(cls, values: Mapping[str, Any], known: Iterable[str] = ()) -> LoraTrainOptions:
        """Options from kohya-named values (the rest at kohya's defaults)."""
        return cls(**checked(cls, values, known))


def add_kohya_arguments(parser: argparse.ArgumentParser, *tables: type) -> None:
    """A flag per kohya option of `tables`: `--<kohya name>` (and `--<short>`), the
    field's type and default; a bool is kohya's store_true flag."""
    for table in tables:
        for o in kohya_options(table):
            flags = [f"--{o.mark.short}"] if o.mark.short else []
            flags.append(f"--{o.name}")
            if o.type is bool:
                parser.add_argument(
                    *flags, dest=o.name, action="store_true", default=o.default, help=o.mark.help
                )
            else:
                parser.add_argument(
                    *flags, dest=o.name, type=o.type, default=o.default, help=o.mark.help
                )


def kohya_values(source: Any, *tables: type) -> dict[str, Any]:
    """The kohya options of `tables` that `source` (parsed arguments, a job's settings)
    has, by name."""
    names = [o.name for table in tables for o in kohya_options(table)]
    return {name: getattr(source, name) for name in names if hasattr(source, name)}
