"""Memory admission across workers: the single-process backend's check (engine/admission.py)
applied to each Ray actor's reported workplace (its device, the memory free there, the
models it holds). A job is accepted when it fits at least one worker, and dispatched only to
workers it fits (dispatch.py); one that fits none is refused with the same `limit_exceeded`
a single backend gives, naming the worker with the most room.

Pure apart from the estimate, which the caller passes in (the front engine's memory_needs:
the model sizes come from its library)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dreamwire.backend.engine.admission import Need, Workplace, refusal
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job

Estimate = Callable[[Job, Workplace], list[Need]]


@dataclass(frozen=True)
class Placed:
    """A worker by name with its reported workplace."""

    name: str
    place: Workplace


def refusal_on(job: Job, worker: Placed, estimate: Estimate) -> DreamwireError | None:
    """The single backend's refusal, for `worker`; None when the job fits it."""
    return refusal(job.job_id, estimate(job, worker.place), worker.place.device)


def refusal_everywhere(
    job: Job, workers: Sequence[Placed], estimate: Estimate
) -> DreamwireError | None:
    """None when the job fits some worker (or none is known yet: the actor checks again
    before it starts); else the refusal of the roomiest worker, which says what the job
    needs and what is free there."""
    refused: list[tuple[Placed, DreamwireError]] = []
    for w in workers:
        r = refusal_on(job, w, estimate)
        if r is None:
            return None
        refused.append((w, r))
    if not refused:
        return None
    worker, r = max(refused, key=lambda wr: room(wr[0].place))
    if len(refused) == 1:
        return r
    return DreamwireError(
        ErrorCode.LIMIT_EXCEEDED,
        f"{r.message} (on {worker.name}, the roomiest of {len(refused)} workers)",
        job.job_id,
    )


def room(place: Workplace) -> tuple[int, int]:
    """Free VRAM, then free RAM (unknown counts as none)."""
    return (place.device.vram_free or 0, place.device.ram_free or 0)
