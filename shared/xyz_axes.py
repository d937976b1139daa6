"""The X/Y/Z plot's axes, as A1111's `scripts/xyz_grid.py` defines them: which job field an
axis sets, how its values are written (the value syntax), and the cell jobs of a grid.

Value syntax (A1111 1.10's, exactly): the values are one CSV line (so a value holding a comma
is quoted: `"a, b",c`), every field stripped and kept, an empty one too (so `1,,2` is refused
on a number axis, as A1111 refuses it); for a whole-number axis `1-5` is 1, 2, 3, 4, 5, `1-10 (+3)` steps by 3
(1, 4, 7, 10), `1-10 [4]` is 4 values spread evenly (numpy's linspace, truncated: 1, 4, 7,
10); for a decimal axis `0.5-1 (+0.25)` and `1-2 [3]` likewise (the step's end included as
A1111's arange(start, end + step, step) includes it). Other values are taken as they are.

Prompt S/R: the first value is what to search for; each value replaces it in the prompt and
the negative prompt (a first value found in neither is refused, as A1111 refuses it).
Seeds: -1 (or an empty value) becomes a fixed random seed, so every cell of a row keeps it.

Axes beyond A1111's own list, and the choices they make:
- "Schedule type" (A1111 1.9+) replaces the schedule part of the job's sampler name
  ("DPM++ 2M Karras" with "Exponential": "DPM++ 2M Exponential"; "Automatic": the sampler
  alone), as `Job.sampler` carries both (shared/schedule_types.py).
- "Hires upscaler", "Hires steps", and "Hires upscale" (the scale factor, named by its
  infotext key; A1111 has no such axis) turn Hires.fix on with A1111's defaults when the
  base job has none, where A1111 would change a field nothing reads: a plot of Hires
  settings is asked for to see Hires.fix. "Denoising" sets the Hires pass's denoise too, as
  A1111's denoising_strength is that pass's on txt2img.
- "LoRA weight" (the issue's; A1111 artists write Prompt S/R on `<lora:name:0.5>`, which
  works here as well): a decimal axis setting the weight of the job's one LoRA, a
  `<lora:...>` tag of the prompt or an entry of `Job.loras`, text encoder and UNet alike.
  A job with none or several is refused, naming Prompt S/R for the several case: which
  one to vary is the artist's to say.
- "Nothing" (A1111's): an unused axis; an unused Y before a used Z keeps Z the Z axis.

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
from .schedule_types import schedule_type, with_schedule

_INT = r"([+-]?\s*\d+)"
_FLOAT = r"([+-]?\s*\d+(?:.\d*)?)"
RANGE = re.compile(rf"\s*{_INT}\s*-\s*{_INT}(?:\s*\(([+-]\d+)\s*\))?\s*")
RANGE_FLOAT = re.compile(rf"\s*{_FLOAT}\s*-\s*{_FLOAT}(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
RANGE_COUNT = re.compile(rf"\s*{_INT}\s*-\s*{_INT}(?:\s*\[(\d+)\s*\])?\s*")
RANGE_COUNT_FLOAT = re.compile(rf"\s*{_FLOAT}\s*-\s*{_FLOAT}(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*")


def _num(text: str) -> str:
    return text.replace(" ", "")


def split_values(text: str) -> list[str]:
    """The axis's values: one CSV line, each field stripped (A1111 1.10's
    csv_string_to_list_strip: an empty field stays, as "")."""
    return [x.strip() for x in chain.from_iterable(csv.reader(StringIO(text)))]


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
    # A1111's `confirm`: checks the parsed values before any cell runs (and may spell
    # them as the backend does); raises DreamwireError.
    confirm: Callable[[list], list] | None = None

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
        if self.confirm is not None:
            try:
                parsed = self.confirm(parsed)
            except DreamwireError as exc:
                raise DreamwireError(
                    exc.code, f"X/Y/Z axis {self.label!r}: {exc.message}"
                ) from None
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


def _hires(name: str) -> Callable[[Job, Any, list], Job]:
    def apply(job: Job, x: Any, xs: list) -> Job:
        hires = job.hires or HiresFix()  # the module's note: a Hires axis turns it on
        return dataclasses.replace(job, hires=dataclasses.replace(hires, **{name: x}))

    return apply


def _denoising(job: Job, x: float, xs: list) -> Job:
    # A1111's one denoising_strength: img2img's, and on txt2img the Hires pass's.
    job = dataclasses.replace(job, strength=x)
    if job.hires is not None:
        job = dataclasses.replace(job, hires=dataclasses.replace(job.hires, denoise=x))
    return job


def _schedule(job: Job, x: str, xs: list) -> Job:
    return dataclasses.replace(job, sampler=with_schedule(job.sampler, x))


def _schedule_types(values: list) -> list:
    return [schedule_type(v) for v in values]


# A prompt's LoRA tags, as A1111's extra networks read them: <lora:name:te:unet:dyn>.
_LORA_TAG = re.compile(r"<(lora|lyco):([^>]+)>")


def _lora_tag(kind: str, args: str, weight: float) -> str:
    """The tag with `weight` for the text encoder and the UNet alike (positions 1 and 2,
    te=/unet= dropped); its name, dyn and other named arguments kept."""
    w = str(round(weight, 8))
    positional = [a for a in args.split(":") if len(a.split("=", 2)) != 2]
    named = [a for a in args.split(":") if len(a.split("=", 2)) == 2]
    named = [a for a in named if a.split("=")[0] not in ("te", "unet")]
    positional = [positional[0], w] + ([w, *positional[3:]] if len(positional) > 2 else [])
    return f"<{kind}:{':'.join(positional + named)}>"


def _lora_weight(job: Job, x: float, xs: list) -> Job:
    tags = list(_LORA_TAG.finditer(job.prompt))
    count = len(tags) + len(job.loras)
    if count != 1:
        names = [m.group(2).split(":")[0] for m in tags] + [r.name for r in job.loras]
        why = (
            "the job uses no LoRA (add one, e.g. <lora:name:1> in the prompt)"
            if not count
            else f"the job uses {count} LoRAs ({', '.join(names)}); to vary one of them, use "
            f"Prompt S/R on its tag, as in A1111 (values <lora:{names[0]}:1>, "
            f"<lora:{names[0]}:0.5>)"
        )
        raise DreamwireError(ErrorCode.INVALID_JOB, f"LoRA weight varies a job's one LoRA; {why}")
    if job.loras:
        (ref,) = job.loras
        return dataclasses.replace(job, loras=[dataclasses.replace(ref, weight=x, weight_te=None)])
    (m,) = tags
    tag = _lora_tag(m.group(1), m.group(2), x)
    return dataclasses.replace(job, prompt=job.prompt[: m.start()] + tag + job.prompt[m.end() :])


def _control_weight(job: Job, x: float, xs: list) -> Job:
    # The ControlNet extension's "[ControlNet] Weight" axis: every unit of the job.
    units = [dataclasses.replace(u, weight=x) for u in job.controls]
    return dataclasses.replace(job, controls=units)


# A1111's "Nothing": one value that changes nothing and labels nothing.
NOTHING = Axis("Nothing", str, lambda job, x, xs: job, label_values=False)

AXES: dict[str, Axis] = {
    a.label: a
    for a in (
        NOTHING,
        Axis("Seed", int, _field("seed")),
        Axis("Var. seed", int, _field("subseed")),
        Axis("Var. strength", float, _field("subseed_strength")),
        Axis("Steps", int, _field("steps")),
        Axis("Hires steps", int, _hires("steps")),
        Axis("Hires upscaler", str, _hires("upscaler")),
        Axis("Hires upscale", float, _hires("scale")),
        Axis("CFG Scale", float, _field("cfg")),
        Axis("Distilled CFG Scale", float, _field("distilled_cfg")),
        Axis("Rescale CFG", float, _field("cfg_rescale")),  # the CFG rescale extension's axis
        Axis("Prompt S/R", str, _prompt_sr, label_values=False),
        Axis("Sampler", str, _field("sampler"), label_values=False),
        Axis("Schedule type", str, _schedule, confirm=_schedule_types),
        Axis("Checkpoint name", str, _field("model"), label_values=False, cost=1.0),
        Axis("VAE", str, _field("vae"), cost=0.7),
        Axis("Clip skip", int, _field("clip_skip")),
        Axis("Denoising", float, _denoising),
        Axis("LoRA weight", float, _lora_weight),
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


def parse_rows(rows: list[tuple[str, str]]) -> list[tuple[Axis, list]]:
    """The axes by place, X first; an unused row ("" or "Nothing" type) before a used one
    is A1111's Nothing, so a Z with no Y is still the Z axis. DreamwireError naming the axis
    for an unknown type or values its syntax cannot read."""
    used = [bool(label) and label != NOTHING.label for label, _ in rows]
    last = max((i for i, u in enumerate(used) if u), default=-1)
    return [
        (axis(label), axis(label).parse(values)) if u else (NOTHING, [""])
        for (label, values), u in zip(rows[: last + 1], used, strict=False)
    ]


def named_axes(rows: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """("X"/"Y"/"Z", type, values as typed) of each used row, by its place: what the grid's
    infotext names (A1111 writes none for a Nothing axis)."""
    return [
        (name, label, values)
        for name, (label, values) in zip("XYZ", rows, strict=False)
        if label and label != NOTHING.label
    ]


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


def check_cells(grid: list[Cell]) -> None:
    """Every cell's job validated (copies: validation settles a job's mode) before any
    runs, as A1111's `confirm` checks an axis first: a Hires upscaler or a strength out of
    range is refused by name, not after half the grid has run."""
    for c in grid:
        dataclasses.replace(c.job).validate()


SCRIPT = "X/Y/Z plot"


def grid_infotext(first_cell_infotext: str, named: list[tuple[str, str, str]]) -> str:
    """The first cell's infotext with the axes added, as A1111 writes a grid's; `named`:
    ("X"/"Y"/"Z", axis type, values as typed) of each axis used."""
    from .infotext import quote

    extra = [f"Script: {SCRIPT}"]
    for name, label, values in named:
        extra += [f"{name} Type: {quote(label)}", f"{name} Values: {quote(values)}"]
    return ", ".join([first_cell_infotext, *extra]) if first_cell_infotext else ", ".join(extra)
