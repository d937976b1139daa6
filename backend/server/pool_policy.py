"""The actor pool's scheduling and bookkeeping, without Ray: which waiting job starts on
which idle actor, which batch job makes room for an urgent one, and what becomes of a job
when its run ends, made room, or its actor died. ray_pool.py is the thin layer that runs
jobs on real actors and calls this at each of those moments; tests/wire/test_pool_policy.py
plays them through on the real JobQueue and DurableQueue.

- Dispatch (dispatch.py decides, this applies): a started job is claimed from the queue and
  its actor marked busy; a batch job chosen to make room gets its `preempt` flag, which its
  run sees as a cancel at its next step.
- A run that stopped because it was asked to make room goes back to the queue at its place
  (ahead of later jobs of its class), its start not counted; one that ended otherwise
  meanwhile (a result, an error, a client's cancel, the server stopping) ends as it ended.
- An actor that dies mid-job: the job is queued again, avoiding that actor, and runs once
  more; a second death ends it with `poison_job`. The actor stays busy until it is back
  (`actor_back`) or given up (`actor_lost`).

Thread-safe: every change to the actors is made under one lock, so the dispatcher never sees
an actor free while its job is still on it, nor a job back in the queue with its flag up.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dreamwire.backend.engine.admission import Workplace
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import ErrorCode

from . import dispatch
from .durable import DurableQueue
from .executor import Feed, Poster, RunFn, WorkerInfo, WorkerLost
from .jobqueue import Entry, JobQueue
from .ray_actor import ActorInfo
from .worker import forget, run_entry
from .worker_memory import Estimate, Placed, refusal_on

log = logging.getLogger("dreamwire.server")

# A job is run at most this often when the actors running it die.
MAX_ATTEMPTS = 2
# How many waiting jobs each dispatch looks at: enough to find one an idle actor may take
# behind jobs that fit only busy ones, few enough that a 500-frame queue costs little.
DISPATCH_HEAD = 64


@dataclass
class Slot:
    """One actor as the front sees it; changed only under the pool's lock."""

    name: str
    info: ActorInfo
    entry: Entry | None = None  # the job it runs (or ran, until it is back after a death)
    jobs_run: int = 0
    alive: bool = True  # False: it did not come back after a death


class Outcome(enum.Enum):
    ENDED = "ended"  # off the queue; `message` is its end for the client
    MADE_ROOM = "made_room"  # back in the queue at its place, for a later start
    RERUN = "rerun"  # its actor died: queued again for another actor
    KEPT = "kept"  # its actor died as the server stops: on disk for the next start


@dataclass(frozen=True)
class Ending:
    outcome: Outcome
    message: P.Message | None = None  # to post to the client (ENDED only)
    actor_died: bool = False  # wait for it to come back before it gets work again


@dataclass(frozen=True)
class Start:
    """A claimed job for an actor: the caller hands it to that actor's runner."""

    slot: Slot
    entry: Entry


class PoolPolicy:
    def __init__(
        self,
        jobs: JobQueue,
        slots: Sequence[Slot],
        durable: DurableQueue | None = None,
        default_model: Callable[[], str] = lambda: "",
        estimate: Estimate | None = None,
    ):
        self.jobs = jobs
        self.slots = list(slots)
        self.durable = durable
        self.default_model = default_model  # what a job naming no model runs on (affinity)
        self.estimate = estimate  # None: no memory check here (each actor checks anyway)
        self.lock = threading.Lock()

    # -- dispatch ------------------------------------------------------------------------
    def dispatch(self) -> list[Start]:
        """Start what may start now and ask batch jobs to make room for urgent ones."""
        head = {e.job_id: e for e in self.jobs.head(DISPATCH_HEAD)}
        if not head:
            return []
        default = self.default_model()
        with self.lock:
            actors = [_actor_state(s, default) for s in self.slots]
        decision = dispatch.decide(
            [_waiting(e, default) for e in head.values()], actors, self._fits(head)
        )
        by_name = {s.name: s for s in self.slots}
        starts: list[Start] = []
        with self.lock:
            for a in decision.start:
                slot, entry = by_name[a.actor], head[a.job_id]
                # Only the dispatcher gives an actor work, so an idle one is still idle; the
                # job may have been cancelled since the snapshot.
                if slot.alive and slot.entry is None and self.jobs.claim(entry):
                    slot.entry = entry
                    starts.append(Start(slot, entry))
            for job_id in decision.preempt:
                entry = next(
                    (s.entry for s in self.slots if s.entry and s.entry.job_id == job_id), None
                )
                if entry is not None:
                    log.info("job %s: stopped to make room for an urgent job", job_id)
                    entry.preempt.set()
        return starts

    def _fits(self, head: dict[str, Entry]) -> dispatch.Fits:
        """Whether a waiting job fits an actor's memory free now (once per pair a round)."""
        estimate = self.estimate
        if estimate is None:
            return dispatch.fits_anywhere
        places = {p.name: p for p in self.placed()}
        seen: dict[tuple[str, str], bool] = {}

        def fits(job: dispatch.Waiting, actor: dispatch.ActorState) -> bool:
            key = (job.job_id, actor.name)
            if key not in seen:
                place = places.get(actor.name)
                try:
                    refused = place is not None and refusal_on(
                        head[job.job_id].job, place, estimate
                    )
                except Exception:  # a bug in the estimate: the actor checks again anyway
                    log.exception("job %s: no memory estimate for %s", job.job_id, actor.name)
                    refused = False
                seen[key] = not refused
            return seen[key]

        return fits

    # -- a run's end ---------------------------------------------------------------------
    def run(
        self,
        slot: Slot,
        entry: Entry,
        engine_run: RunFn,
        feed: Feed,
        poster: Poster,
        stopping: threading.Event,
    ) -> Ending:
        """Run a started job on its actor (`engine_run`: engine.run there; WorkerLost when
        the actor died) and settle how it ended. The caller posts the message."""
        attempts = entry.attempts
        try:
            end = run_entry(entry, engine_run, feed, poster, stopping)
        except WorkerLost as exc:
            return self.actor_died(slot, entry, str(exc), stopping.is_set())
        except Exception as exc:  # a bug here must not leave the actor busy for ever
            log.exception("job %s: failed on %s", entry.job_id, slot.name)
            forget(feed, entry.job_id)
            end = P.error_message(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", entry.job_id)
        return self.run_ended(slot, entry, end, attempts, stopping.is_set())

    def run_ended(
        self, slot: Slot, entry: Entry, end: P.Message, attempts: int, stopping: bool
    ) -> Ending:
        """The run of `entry` on `slot` ended with `end` (run_entry's final message);
        `attempts` is what entry.attempts was before this run began."""
        made_room = self._made_room(entry, end, attempts, stopping)
        with self.lock:
            slot.jobs_run += 1
            slot.entry = None
            if made_room:
                # Back in the queue with its actor free and its flag down in one step: the
                # dispatcher never sees it running and not yet making room.
                entry.preempt.clear()
                self.jobs.requeue(entry)
                log.info("job %s: queued again after making room on %s", entry.job_id, slot.name)
                return Ending(Outcome.MADE_ROOM)
            self.jobs.done(entry)
        return Ending(Outcome.ENDED, end)

    def _made_room(self, entry: Entry, end: P.Message, attempts: int, stopping: bool) -> bool:
        if not entry.preempt.is_set():
            return False
        if end.type != P.CANCELLED or entry.cancel.is_set() or stopping:
            return False
        entry.attempts = attempts  # this start does not count towards a poison job
        if attempts == 0 and self.durable is not None:
            self.durable.undo_start(entry.job_id)
        return True

    def actor_died(self, slot: Slot, entry: Entry, why: str, stopping: bool) -> Ending:
        """The actor running `entry` died: run it again elsewhere, or end it. The actor
        stays busy until actor_back or actor_lost."""
        job_id = entry.job_id
        with self.lock:
            slot.jobs_run += 1
            if stopping:  # on disk for the next start, like a shutdown's cancel
                self.jobs.done(entry)
                return Ending(Outcome.KEPT, actor_died=True)
            if entry.attempts < MAX_ATTEMPTS:
                log.warning(
                    "job %s: %s died running it (%s); running it again", job_id, slot.name, why
                )
                entry.avoid = slot.name
                entry.preempt.clear()  # it is not running now: no room left to make
                self.jobs.requeue(entry)
                return Ending(Outcome.RERUN, actor_died=True)
            self.jobs.done(entry)
        log.error("job %s: a worker died running it %d times; giving up", job_id, entry.attempts)
        if self.durable is not None:
            self.durable.remove(job_id)
        return Ending(
            Outcome.ENDED,
            P.error_message(
                ErrorCode.POISON_JOB,
                f"the worker running this job died {entry.attempts} times; it is not started "
                "again (try a smaller size or batch)",
                job_id,
            ),
            actor_died=True,
        )

    # -- the actors ----------------------------------------------------------------------
    def actor_back(self, slot: Slot, info: ActorInfo) -> None:
        """Restarted after a death (its model cache empty): free for work again."""
        log.info("ray: %s is back (pid %d)", slot.name, info.pid)
        with self.lock:
            slot.info = info
            slot.entry = None

    def actor_lost(self, slot: Slot, why: str) -> None:
        log.error("ray: %s did not come back: %s", slot.name, why)
        with self.lock:
            slot.alive = False
            slot.entry = None

    def update_info(self, slot: Slot, info: ActorInfo) -> None:
        with self.lock:
            slot.info = info

    def update_place(self, slot: Slot, place: Workplace) -> None:
        """What the actor holds and has free after a job."""
        with self.lock:
            slot.info = ActorInfo(slot.info.pid, slot.info.device, place)

    def idle(self) -> list[Slot]:
        with self.lock:
            return [s for s in self.slots if s.alive and s.entry is None]

    def placed(self) -> list[Placed]:
        with self.lock:
            return [Placed(s.name, s.info.place) for s in self.slots if s.alive]

    def workers(self) -> list[WorkerInfo]:
        with self.lock:
            return [
                WorkerInfo(
                    name=s.name,
                    device=s.info.device if s.alive else "lost",
                    models=s.info.models,
                    pid=s.info.pid,
                    job=s.entry.job_id if s.entry is not None else "",
                    ram_free=s.info.place.device.ram_free,
                    vram_free=s.info.place.device.vram_free,
                )
                for s in self.slots
            ]


def _actor_state(slot: Slot, default: str) -> dispatch.ActorState:
    entry = slot.entry
    return dispatch.ActorState(
        slot.name,
        tuple(slot.info.models),
        slot.jobs_run,
        _waiting(entry, default) if entry is not None else None,
        slot.alive,
        entry is not None and entry.preempt.is_set(),
    )


def _waiting(entry: Entry, default_model: str) -> dispatch.Waiting:
    return dispatch.Waiting(
        entry.job_id, entry.rank, entry.seq, entry.job.model or default_model, entry.avoid
    )
