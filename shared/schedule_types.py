"""A1111 1.9+'s "Schedule type" names and the sampler spelling that carries one.

`Job.sampler` holds one name (PROTOCOL.md): A1111's older combined form, the sampler with
its schedule type appended ("DPM++ 2M Karras"), or the sampler alone for "Automatic". The
backend's samplers.py maps each name to diffusers flags; the hosts (the X/Y/Z plot's
"Schedule type" axis, an infotext read back) only need the names, so they live here.

Stdlib only: the hosts ship this module.
"""

from __future__ import annotations

from .errors import DreamwireError, ErrorCode

# In A1111's menu order; backend/samplers.py keys its diffusers flags from these names.
SCHEDULE_TYPES: tuple[str, ...] = (
    "Automatic",
    "Uniform",
    "Normal",
    "Karras",
    "Exponential",
    "Beta",
    "SGM Uniform",
    "Simple",
    "Polyexponential",
    "KL Optimal",
)
_BY_KEY = {s.lower(): s for s in SCHEDULE_TYPES}


def schedule_type(name: str) -> str:
    """A schedule type as A1111 spells it, whatever the case; INVALID_JOB naming the known
    ones for anything else."""
    found = _BY_KEY.get(" ".join(str(name).split()).lower())
    if found is None:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"unknown schedule type {name!r}; known: {', '.join(SCHEDULE_TYPES)}",
        )
    return found


def split_sampler(sampler: str) -> tuple[str, str]:
    """("DPM++ 2M", "Karras") from "DPM++ 2M Karras"; ("Euler", "Automatic") from "Euler".
    The longest schedule name that ends the text wins ("SGM Uniform" before "Uniform")."""
    text = " ".join(sampler.split())
    for key in sorted(_BY_KEY, key=len, reverse=True):
        if text.lower().endswith(" " + key) and len(text) > len(key) + 1:
            return text[: -len(key) - 1], _BY_KEY[key]
    return text, "Automatic"


def with_schedule(sampler: str, schedule: str) -> str:
    """The sampler name running `schedule`: its own schedule type replaced, none for
    "Automatic" (the sampler's own default, as A1111 1.9+ resolves it)."""
    base, _ = split_sampler(sampler)
    schedule = schedule_type(schedule)
    return base if schedule == "Automatic" else f"{base} {schedule}"
