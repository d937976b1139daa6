"""The X/Y/Z plot's axes, as A1111's `scripts/xyz_grid.py` defines them: which job field an
axis sets, how its values are written (the value syntax), and the cell jobs of a grid.

Value syntax (A1111's, exactly): the values are one CSV line (so a value holding a comma is
quoted: `"a, b",c`); for a whole-number axis `1-5` is 1, 2, 3, 4, 5, `1-10 (+3)` steps by 3
(1, 4, 7, 10), `1-10 [4]` is 4 values spread evenly (numpy's linspace, truncated: 1, 4, 7,
10); for a decimal axis `0.5-1 (+0.25)` and `1-2 [3]` likewise (the step's end included as
A1111's arange(start, end + step, step) includes it). Other values are taken as they are.

Prompt S/R: the first value is what to search for; each value replaces it in the prompt and
the negative prompt (a first value found in neither is refused, as A1111 refuses it).
Seeds: -1 (or an empty value) becomes a fixed random seed, so every cell of a row keeps it.

Stdlib and numpy only: the hosts ship this module.
"""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from itertools import chain
from typing import Any

import numpy as np

from .errors import DreamwireError, ErrorCode
from .job import HiresFix, Job

_INT = r"([+-]?\s*\d+)"
_FLOAT = r"([+-]?\s*\d+(?:.\d*)?)"
RANGE = re.compile(rf"\s*{_INT}\s*-\s*{_INT}(?:\s*\(([+-]\d+)\s*\))?\s*")
RANGE_FLOAT = re.compile(rf"\s*{_FLOAT}\s*-\s*{_FLOAT}(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
RANGE_COUNT = re.compile(rf"\s*{_INT}\s*-\s*{_INT}(?:\s*\[(\d+)\s*\])?\s*")
RANGE_COUNT_FLOAT = re.compile(rf"\s*{_FLOAT}\s*-\s*{_FLOAT}(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*")


def _num(text: str) -> str:
    return text.replace(" ", "")


def split_values(text: str) -> list[str]:
    """The axis's values: one CSV line, each stripped, empty ones dropped (A1111's)."""
    return [x.strip() for x in chain.from_iterable(csv.reader(StringIO(text))) if x]


def expand_int(values: list[str]) -> list[Any]:
    out: list[Any] = []
    for val in values:
        m = RANGE.fullmatch(val)
        mc = RANGE_COUNT.fullmatch(val)
        if m is not None:
            start, end = int(_num(m.group(1))), int(_num(m.group(2))) + 1
            step = int(m.group(3)) if m.group(3) is not None else 1
            out += list(range(start, end, step))
        elif mc is not None:
            start, end = int(_num(mc.group(1))), int(_num(mc.group(2)))
            num = int(mc.group(3)) if mc.group(3) is not None else 1
            out += [int(x) for x in np.linspace(start=start, stop=end, num=num).tolist()]
        else:
            out.append(val)
    return out


def expand_float(values: list[str]) -> list[Any]:
    out: list[Any] = []
    for val in values:
        m = RANGE_FLOAT.fullmatch(val)
        mc = RANGE_COUNT_FLOAT.fullmatch(val)
        if m is not None:
            start, end = float(_num(m.group(1))), float(_num(m.group(2)))
            step = float(m.group(3)) if m.group(3) is not None else 1
            out += np.arange(start, end + step, step).tolist()
        elif mc is not None:
            start, end = float(_num(mc.group(1))), float(_num(mc.group(2)))
            num = int(mc.group(3)) if mc.group(3) is not None else 1
            out += np.linspace(start=start, stop=end, num=num).tolist()
        else:
            out.append(val)
    return out


@dataclass(frozen=True)
class Axis:
    """One kind of axis: its A1111 label, its value type, and how a value sets a job."""

    label: str
    type: type
    apply: Callable[[Job, Any, list], Job]
    # "Seed: 3" (A1111's format_value_add_label) or just the value (format_value).
    label_values: bool = True
    # Slow to change (a checkpoint load): kept in the outer loop, as A1111 orders cells.
    cost: float = 0.0

    def parse(self, text: str) -> list[Any]:
        values = split_values(text)
        if self.type is int:
            values = expand_int(values)
        elif self.type is float:
            values = expand_float(values)
        try:
            parsed = [self.type(v) for v in values]
        except ValueError as exc:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"X/Y/Z axis {self.label!r}: {exc}"
            ) from None
        if not parsed:
            raise DreamwireError(ErrorCode.INVALID_JOB, f"X/Y/Z axis {self.label!r}: no values")
        return parsed

    def cell_label(self, value: Any) -> str:
        if isinstance(value, float):
            value = round(value, 8)
        return f"{self.label}: {value}" if self.label_values else str(value)


def _field(name: str) -> Callable[[Job, Any, list], Job]:
    return lambda job, x, xs: dataclasses.replace(job, **{name: x})


def _prompt_sr(job: Job, x: str, xs: list) -> Job:
    if xs[0] not in job.prompt and xs[0] not in job.negative:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"Prompt S/R did not find {xs[0]} in prompt or negative prompt.",
        )
    return dataclasses.replace(
        job, prompt=job.prompt.replace(xs[0], x), negative=job.negative.replace(xs[0], x)
    )


def _hires_steps(job: Job, x: int, xs: list) -> Job:
    hires = job.hires or HiresFix()
    return dataclasses.replace(job, hires=dataclasses.replace(hires, steps=x))


def _control_weight(job: Job, x: float, xs: list) -> Job:
    # The ControlNet extension's "[ControlNet] Weight" axis: every unit of the job.
    units = [dataclasses.replace(u, weight=x) for u in job.controls]
    return dataclasses.replace(job, controls=units)


AXES: dict[str, Axis] = {
    a.label: a
    for a in (
        Axis("Seed", int, _field("seed")),
        Axis("Var. seed", int, _field("subseed")),
        Axis("Var. strength", float, _field("subseed_strength")),
        Axis("Steps", int, _field("steps")),
        Axis("Hires steps", int, _hires_steps),
        Axis("CFG Scale", float, _field("cfg")),
        Axis("Distilled CFG Scale", float, _field("distilled_cfg")),
        Axis("Rescale CFG", float, _field("cfg_rescale")),  # the CFG rescale extension's axis
        Axis("Prompt S/R", str, _prompt_sr, label_values=False),
        Axis("Sampler", str, _field("sampler"), label_values=False),
        Axis("Checkpoint name", str, _field("model"), label_values=False, cost=1.0),
        Axis("VAE", str, _field("vae"), cost=0.7),
        Axis("Clip skip", int, _field("clip_skip")),
        Axis("Denoising", float, _field("strength")),
        Axis("[ControlNet] Weight", float, _control_weight),
    )
}


def axis(label: str) -> Axis:
    found = AXES.get(label)
    if found is None:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"no X/Y/Z axis {label!r}; known: {', '.join(AXES)}",
        )
    return found


def fix_seeds(ax: Axis, values: list, rng: random.Random | None = None) -> list:
    """A1111's fix_axis_seeds: -1 (or "") on a seed axis becomes a fixed random seed."""
    if ax.label not in ("Seed", "Var. seed"):
        return values
    r = rng or random.Random()
    return [r.randrange(4294967294) if v in (None, "", -1) else v for v in values]


@dataclass(frozen=True)
class Cell:
    ix: int
    iy: int
    iz: int
    job: Job


def cells(base: Job, axes: list[tuple[Axis, list]], rng: random.Random | None = None) -> list[Cell]:
    """The grid's jobs, X fastest then Y then Z (A1111's cell index ix + iy*|X| + ...);
    up to three (axis, values) pairs, missing ones count as one value. The base job's own
    -1 seed is fixed first (A1111's fix_seed), so every cell shares it."""
    r = rng or random.Random()
    if base.seed == -1:
        base = dataclasses.replace(base, seed=r.randrange(4294967294))
    full = [(ax, fix_seeds(ax, list(vals), r)) for ax, vals in axes] + [(None, [None])] * (
        3 - len(axes)
    )
    (xa, xs), (ya, ys), (za, zs) = full[:3]
    out = []
    for iz, z in enumerate(zs):
        for iy, y in enumerate(ys):
            for ix, x in enumerate(xs):
                job = dataclasses.replace(base, job_id=f"{base.job_id}-{ix}-{iy}-{iz}"[:64])
                for ax, v, vals in ((xa, x, xs), (ya, y, ys), (za, z, zs)):
                    if ax is not None:
                        job = ax.apply(job, v, vals)
                out.append(Cell(ix, iy, iz, job))
    return out


SCRIPT = "X/Y/Z plot"


def grid_infotext(first_cell_infotext: str, named: list[tuple[str, str, str]]) -> str:
    """The first cell's infotext with the axes added, as A1111 writes a grid's; `named`:
    ("X"/"Y"/"Z", axis type, values as typed) of each axis used."""
    from .infotext import quote

    extra = [f"Script: {SCRIPT}"]
    for name, label, values in named:
        extra += [f"{name} Type: {quote(label)}", f"{name} Values: {quote(values)}"]
    return ", ".join([first_cell_infotext, *extra]) if first_cell_infotext else ", ".join(extra)
