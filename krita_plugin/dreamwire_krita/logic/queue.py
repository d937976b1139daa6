"""The docker's queue: the seed each queued job gets, and what the queue menu lists.

Krita AI Diffusion's seed rule: with "fixed seed" on, every press sends the panel's seed
(so changing only the prompt compares like with like); with it off, every queued job gets
a fresh random seed, chosen here rather than by the backend so the queue and the history
can show it before the result arrives.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from .live import new_seed

RANDOM = -1  # the seed box's "random" value


def job_seed(seed: int, fixed: bool, rng: random.Random | None = None) -> int:
    """The seed one queued job is sent with: the panel's when it is fixed (and not the
    "random" value), else a new random one per job."""
    if fixed and seed >= 0:
        return int(seed)
    return new_seed(rng)


def fixed_from_stored(data: dict) -> bool:
    """Settings saved before the fixed-seed toggle existed: a seed that was set was meant
    to be used again; "random" (-1) was not."""
    if "fixed_seed" in data:
        return bool(data["fixed_seed"])
    try:
        return int(data.get("seed", RANDOM)) >= 0
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class QueuedJob:
    """What the queue knows of one job in flight (logic/session.py's Pending, reduced)."""

    job_id: str
    action: str  # "generate" | "refine" | "inpaint" | "upscale" | ...
    prompt: str
    seed: int
    stage: str  # "sent" | "queued" | a Progress state ("generating", "decoding", ...)
    ahead: int | None = None  # jobs before it in the backend's queue, when it said


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    text: str  # the menu line: what, which prompt, which seed, and where it stands
    running: bool


# Actions that never show in the queue: Live replaces its own job on every pause, and a
# click selection is answered in a moment.
HIDDEN = ("live", "select")
PROMPT_CHARS = 32


def _short(prompt: str) -> str:
    text = " ".join(prompt.split())
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "…"


def _where(job: QueuedJob) -> str:
    if job.stage in ("sent", "queued"):
        return "waiting" if job.ahead is None else f"waiting, {job.ahead} ahead"
    return job.stage.replace("_", " ")


def entries(jobs: Iterable[QueuedJob]) -> list[QueueEntry]:
    """The queue menu's lines, in submission order; the artist's own jobs only."""
    out = []
    for job in jobs:
        if job.action in HIDDEN:
            continue
        prompt = _short(job.prompt)
        action = job.action.replace("_", " ").capitalize()  # "train_lora": "Train lora"
        what = f"{action} “{prompt}”" if prompt else action
        out.append(
            QueueEntry(
                job.job_id,
                f"{what}, seed {job.seed}: {_where(job)}",
                running=job.stage not in ("sent", "queued"),
            )
        )
    return out


def label(shown: list[QueueEntry]) -> str:
    """The queue button's text: how many jobs are in flight, and how many of them wait."""
    waiting = sum(not e.running for e in shown)
    if not shown:
        return "Queue"
    return f"Queue {len(shown)}" + (f" ({waiting} waiting)" if waiting else "")
