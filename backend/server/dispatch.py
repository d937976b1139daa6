"""Which queued jobs start now, on which idle actors, and which batch job makes room: the
Ray pool's dispatch decision (ray_pool.py acts on it).

Pure: a snapshot of the queue's head and of the actors in, a Decision out, so every rule is
unit-tested without Ray (tests/wire/test_wire_ray_units.py). The rules:

- Priority: jobs are taken best class first, then in arrival order (a re-run keeps its
  place). A job no idle actor may take waits; later jobs are still placed, so an actor is
  never left idle while a job it may take waits.
- Memory: a job goes only to an actor it fits (`fits`: the per-actor admission), unless
  every actor is idle: then no memory will come free, and the actor's own check refuses it.
- A job whose actor died under it is not given back to that actor while another is alive.
- Affinity breaks the tie between the idle actors a job may take: one holding its model;
  else the one whose cache loses least by loading it: no model another waiting job wants,
  the fewest models, the fewest jobs run.
- Live and interactive jobs never wait behind batch frames: when one cannot be placed,
  an actor running a batch job (the latest queued of them, one holding the urgent job's
  model first) is preempted: its job goes back to the queue at its place and runs again
  from the start. Batch work thus uses every actor while nothing urgent waits, which an
  actor kept free for urgent work would not; the cost is the preempted frame's steps.
  Normal jobs are not preempted: they are somebody's single picture, not one of many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dreamwire.shared.job import PRIORITIES
from dreamwire.shared.model_names import stem

URGENT_RANK = PRIORITIES["interactive"]  # this rank and better (live) never waits for batch
BATCH_RANK = PRIORITIES["batch"]


@dataclass(frozen=True)
class Waiting:
    """A queued job, as the dispatcher sees it."""

    job_id: str
    rank: int  # PRIORITIES: lower is better
    seq: int  # arrival order
    model: str = ""  # the checkpoint it runs on ("" when not known)
    avoid: str = ""  # the actor that died running it

    @property
    def urgent(self) -> bool:
        return self.rank <= URGENT_RANK


@dataclass(frozen=True)
class ActorState:
    """One actor now."""

    name: str
    models: tuple[str, ...] = ()  # checkpoints it holds
    jobs_run: int = 0
    running: Waiting | None = None  # the job it runs; None: idle
    alive: bool = True
    preempting: bool = False  # its job was asked to make room and has not stopped yet

    @property
    def idle(self) -> bool:
        return self.alive and self.running is None

    def holds(self, model: str) -> bool:
        return bool(model) and stem(model) in {stem(m) for m in self.models}


@dataclass(frozen=True)
class Assignment:
    job_id: str
    actor: str


@dataclass(frozen=True)
class Decision:
    start: tuple[Assignment, ...] = ()
    preempt: tuple[str, ...] = ()  # ids of running batch jobs to stop and queue again


Fits = Callable[[Waiting, ActorState], bool]


def fits_anywhere(_job: Waiting, _actor: ActorState) -> bool:
    return True


def decide(
    waiting: Sequence[Waiting], actors: Sequence[ActorState], fits: Fits = fits_anywhere
) -> Decision:
    """What to do now with `waiting` (any order) on `actors`."""
    alive = [a for a in actors if a.alive]
    idle = {a.name: a for a in alive if a.running is None}
    order = sorted(waiting, key=lambda w: (w.rank, w.seq))
    start: list[Assignment] = []
    stuck: list[Waiting] = []  # urgent jobs no idle actor may take
    for i, job in enumerate(order):
        allowed = [a for a in idle.values() if _may_take(a, job, len(alive))]
        choices = [a for a in allowed if fits(job, a)]
        if not choices and len(idle) == len(alive) and not start:
            # It fits no actor and none is busy, so no memory will come free: an actor's
            # own check refuses it with limit_exceeded instead of it waiting for ever.
            choices = allowed
        if not choices:
            if job.urgent:
                stuck.append(job)
            continue
        wanted = {stem(w.model) for w in order[i + 1 :] if w.model}
        actor = best_actor(job.model, choices, wanted)
        start.append(Assignment(job.job_id, actor.name))
        del idle[actor.name]
    return Decision(tuple(start), _preemptions(stuck, alive, fits))


def _may_take(actor: ActorState, job: Waiting, alive: int) -> bool:
    return alive < 2 or actor.name != job.avoid


def best_actor(model: str, choices: Sequence[ActorState], wanted: set[str]) -> ActorState:
    """The actor (of non-empty `choices`) to run a job on `model`: one holding it, else
    the one whose cache loses least by loading it (`wanted`: models other jobs wait for)."""
    holding = [a for a in choices if a.holds(model)]
    if holding:
        return holding[0]
    return min(
        choices,
        key=lambda a: (any(stem(m) in wanted for m in a.models), len(a.models), a.jobs_run),
    )


def _preemptions(stuck: list[Waiting], alive: list[ActorState], fits: Fits) -> tuple[str, ...]:
    """The batch jobs to stop so that each stuck urgent job gets an actor; an actor already
    making room counts as one on its way."""
    coming = [a for a in alive if a.preempting]
    victims = [
        a
        for a in alive
        if a.running is not None and not a.preempting and a.running.rank >= BATCH_RANK
    ]
    out: list[str] = []
    for job in stuck:
        freed = next((a for a in coming if _may_take(a, job, len(alive)) and fits(job, a)), None)
        if freed is not None:
            coming.remove(freed)
            continue
        choices = [a for a in victims if _may_take(a, job, len(alive)) and fits(job, a)]
        if not choices:
            continue
        # The one holding the urgent job's model, else the latest-queued batch job: it
        # would have been the last of them to start anyway.
        victim = max(choices, key=lambda a: (a.holds(job.model), _seq(a)))
        victims.remove(victim)
        assert victim.running is not None
        out.append(victim.running.job_id)
    return tuple(out)


def _seq(actor: ActorState) -> int:
    return actor.running.seq if actor.running is not None else -1
