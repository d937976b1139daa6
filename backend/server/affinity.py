"""Which idle worker takes a job: one that holds its model already, else the least loaded.

Pure logic, apart from Ray, so the rule is unit-tested on its own (tests/wire/test_ray_pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.shared.model_names import stem


@dataclass(frozen=True)
class Candidate:
    name: str
    models: tuple[str, ...]  # checkpoints it holds now
    jobs_run: int = 0


def pick_worker(model: str, idle: list[Candidate], avoid: str = "") -> Candidate | None:
    """The idle worker for a job on `model` ("" when not known). `avoid` names the worker
    that died running it: never chosen. None: no idle worker may take it."""
    if not idle:
        return None
    choices = [c for c in idle if c.name != avoid]
    if not choices:
        return None
    want = stem(model) if model else ""
    holding = [c for c in choices if want and want in {stem(m) for m in c.models}]
    if holding:
        return holding[0]
    # Loading here evicts least: the emptiest cache, then the one that ran fewest jobs.
    return min(choices, key=lambda c: (len(c.models), c.jobs_run))
