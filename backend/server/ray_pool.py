"""The Ray actor pool: `dreamwire serve --ray [ADDRESS]` runs jobs on Ray actors (ray_actor.py),
while the ZeroMQ front, the durable queue and the result store stay in this process.

- One actor per GPU of the cluster (num_gpus=1); on a CPU-only cluster `--ray-actors` actors
  (default 2) share its CPUs. Each holds its own engine and model cache.
- A dispatcher thread decides, whenever the queue or an actor changes, which waiting jobs
  start on which idle actors and which batch job makes room for an urgent one (dispatch.py:
  priority, memory, model affinity). Each actor has a thread here that streams the job's
  events back (worker.run_entry: the same saving, durable bookkeeping and error mapping as
  the in-process worker) and forwards a cancel to the actor.
- Memory: each actor reports its device and what is free there (engine.workplace); a job
  is accepted when it fits some actor and dispatched only to one it fits
  (worker_memory.py), as a single backend admits it.
- An actor that dies mid-job (killed, out of memory, node lost) is restarted by Ray; its job
  is queued again, ahead of its class, for another actor; a second death is final
  (`poison_job`). A result is saved by the front before it is sent, so nothing stored is
  ever run again.

`ray` is the optional extra `dreamwire[cluster]`; this module imports it only when a pool is
made, and says which extra to install when it is missing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult

from . import dispatch
from .executor import Feed, Poster, ProgressFn, WorkerInfo, WorkerLost, stop_running, when_set
from .jobqueue import Entry
from .ray_actor import ActorEvent, ActorInfo, EngineActor
from .worker import forget, run_entry
from .worker_memory import Estimate, Placed, refusal_everywhere, refusal_on

log = logging.getLogger("dreamwire.server")

# A job is run at most this often when the actors running it die.
MAX_ATTEMPTS = 2
CPU_ACTORS = 2  # on a cluster without GPUs, unless --ray-actors says otherwise
ACTOR_START_TIMEOUT_S = 600.0
# How many waiting jobs each dispatch looks at: enough to find one an idle actor may take
# behind jobs that fit only busy ones, few enough that a 500-frame queue costs little.
DISPATCH_HEAD = 64
# How often idle actors are asked what is free (the welcome, admission); a job's end also
# reports it.
REFRESH_S = 5.0
REATTACH_POLL_S = 1.0  # how often a restarting actor is asked whether it is back


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DreamwireError(
            ErrorCode.BACKEND_UNAVAILABLE,
            "--ray needs Ray, which is not installed: pip install 'dreamwire[cluster]'",
        ) from None
    return ray


@dataclass
class PoolOptions:
    make_engine: Callable[[], Any]  # run in each actor's process
    address: str = ""  # "" starts a local cluster
    actors: int | None = None  # None: one per GPU, else CPU_ACTORS
    # A job's memory peak on a reported workplace (the front engine's memory_needs); None:
    # no admission here (each actor still checks before it starts a job).
    estimate: Estimate | None = None


@dataclass
class _Slot:
    """One actor as the front sees it. `entry` and `models` change under the pool's lock."""

    name: str
    handle: Any
    info: ActorInfo
    inbox: queue.Queue[Entry] = field(default_factory=queue.Queue)
    entry: Entry | None = None
    jobs_run: int = 0
    alive: bool = True


class RayPool:
    """The Executor of a Ray cluster (executor.py)."""

    def __init__(self, feed: Feed, options: PoolOptions, default_model: Callable[[], str]):
        self.ray = import_ray()
        self.feed = feed
        self.jobs = feed.jobs
        self.outbox = feed.outbox
        self.default_model = default_model
        self.estimate = options.estimate
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._own_cluster = not options.address
        # An address re-attaches to a running cluster: a front restarted after a crash
        # makes new actors there (the old ones died with it) and runs its queue folder.
        # "local": a new cluster of our own, never one `ray start` left on this machine
        # (Ray's default would join whatever /tmp/ray/ray_current_cluster names).
        self.ray.init(address=options.address or "local", include_dashboard=False)
        if options.address:
            log.info("ray: attached to the cluster at %s", options.address)
        else:
            log.info("ray: started a local cluster")
        self.slots = self._start_actors(options)
        self._threads = [
            threading.Thread(target=self._dispatch, name="dreamwire-ray-dispatch", daemon=True),
            threading.Thread(target=self._refresh, name="dreamwire-ray-refresh", daemon=True),
            *(
                threading.Thread(
                    target=self._serve, args=(s,), name=f"dreamwire-{s.name}", daemon=True
                )
                for s in self.slots
            ),
        ]

    def _start_actors(self, options: PoolOptions) -> list[_Slot]:
        resources = self.ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        count = options.actors or gpus or CPU_ACTORS
        if gpus:
            placement: dict[str, float] = {"num_gpus": 1}
        else:
            placement = {"num_cpus": max(1, int(resources.get("CPU", 1)) // count)}
        remote = self.ray.remote(EngineActor)
        handles = [
            remote.options(
                **placement,
                max_concurrency=2,  # `cancel` is served while `run` streams
                max_restarts=-1,  # Ray brings a dead actor back; the front re-runs its job
                max_task_retries=0,
                # No name: a restarted front's actors must not collide with the old front's,
                # which Ray reaps (they share its fate) a moment after it died.
                lifetime=None,
            ).remote(options.make_engine)
            for i in range(count)
        ]
        infos = self.ray.get([h.info.remote() for h in handles], timeout=ACTOR_START_TIMEOUT_S)
        slots = [
            _Slot(f"actor-{i}", h, info)
            for i, (h, info) in enumerate(zip(handles, infos, strict=True))
        ]
        for s in slots:
            log.info("ray: %s on %s (pid %d)", s.name, s.info.device, s.info.pid)
        return slots

    # -- Executor ------------------------------------------------------------------------
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        stop_running(self.jobs)  # stop at the next step; they stay queued on disk
        for t in self._threads:
            t.join(timeout)
        for s in self.slots:
            self.ray.kill(s.handle)
        if self._own_cluster:
            self.ray.shutdown()

    def workers(self) -> list[WorkerInfo]:
        with self._cond:
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

    def check_memory(self, job: Job) -> None:
        """Refuse (limit_exceeded) a job that fits no live actor's memory free now."""
        if self.estimate is None:
            return
        refused = refusal_everywhere(job, self._placed(), self.estimate)
        if refused is not None:
            raise refused

    def _placed(self) -> list[Placed]:
        with self._cond:
            return [Placed(s.name, s.info.place) for s in self.slots if s.alive]

    # -- scheduling ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            try:
                self._dispatch_once()
            except Exception:  # the thread must outlive a bug: the jobs wait, not vanish
                log.exception("ray: dispatch failed")
            self.jobs.wait_for_jobs(0.2)  # a put, a re-queue, or an actor freed (nudge)

    def _dispatch_once(self) -> None:
        head = {e.job_id: e for e in self.jobs.head(DISPATCH_HEAD)}
        if not head:
            return
        default = self.default_model()
        with self._cond:
            actors = [self._state(s, default) for s in self.slots]
        decision = dispatch.decide(
            [_waiting(e, default) for e in head.values()], actors, self._fits(head)
        )
        by_name = {s.name: s for s in self.slots}
        with self._cond:
            for a in decision.start:
                slot, entry = by_name[a.actor], head[a.job_id]
                # Only this thread gives an actor work, so an idle one is still idle; the
                # job may have been cancelled since the snapshot.
                if slot.alive and slot.entry is None and self.jobs.claim(entry):
                    slot.entry = entry
                    slot.inbox.put(entry)
            for job_id in decision.preempt:
                entry = next(
                    (s.entry for s in self.slots if s.entry and s.entry.job_id == job_id), None
                )
                if entry is not None:
                    log.info("job %s: stopped to make room for an urgent job", job_id)
                    entry.preempt.set()

    def _state(self, slot: _Slot, default: str) -> dispatch.ActorState:
        entry = slot.entry
        return dispatch.ActorState(
            slot.name,
            tuple(slot.info.models),
            slot.jobs_run,
            _waiting(entry, default) if entry is not None else None,
            slot.alive,
            entry is not None and entry.preempt.is_set(),
        )

    def _fits(self, head: dict[str, Entry]) -> dispatch.Fits:
        """Whether a waiting job fits an actor's memory free now (once per pair a round)."""
        estimate = self.estimate
        if estimate is None:
            return dispatch.fits_anywhere
        places = {p.name: p for p in self._placed()}
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

    def _refresh(self) -> None:
        """Ask the idle actors what they hold and what is free, now and then."""
        while not self.stopping.wait(REFRESH_S):
            with self._cond:
                idle = [s for s in self.slots if s.alive and s.entry is None]
            for slot in idle:
                try:
                    info = self.ray.get(slot.handle.info.remote(), timeout=REFRESH_S)
                except Exception:  # dying or restarting: the job's thread deals with it
                    continue
                with self._cond:
                    slot.info = info

    # -- one actor -----------------------------------------------------------------------
    def _serve(self, slot: _Slot) -> None:
        poster = Poster(self.feed)
        try:
            while not self.stopping.is_set():
                try:
                    entry = slot.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._run(slot, entry, poster)
        finally:
            poster.close()

    def _run(self, slot: _Slot, entry: Entry, poster: Poster) -> None:
        end: P.Message | None = None
        lost = requeued = made_room = False
        attempts = entry.attempts
        try:
            end = run_entry(
                entry,
                lambda job, **kw: self._remote(slot, job, **kw),
                self.feed,
                poster,
                self.stopping,
            )
            if self._made_room(entry, end, attempts):
                end, requeued, made_room = None, True, True
        except WorkerLost as exc:
            lost = True
            end = self._after_loss(slot, entry, exc)
            requeued = end is None and not self.stopping.is_set()
        finally:
            # A re-queued entry may be running on another actor already: not ours to end.
            if not requeued:
                self.jobs.done(entry)
            with self._cond:
                slot.jobs_run += 1
                if not lost:
                    slot.entry = None
                if made_room:
                    # Back in the queue with its actor free and its flag down in one step:
                    # the dispatcher never sees it running and not yet making room.
                    entry.preempt.clear()
                    self.jobs.requeue(entry)
                    log.info(
                        "job %s: queued again after making room on %s", entry.job_id, slot.name
                    )
                self._cond.notify_all()
            self.jobs.nudge()  # the dispatcher: an actor may be free
            if end is not None:
                poster.post(entry.job_id, end)
        if lost and not self.stopping.is_set():
            self._reattach(slot)

    def _made_room(self, entry: Entry, end: P.Message, attempts: int) -> bool:
        """Whether the job stopped to make room for an urgent one: then it goes back to
        the queue at its place (the caller puts it there), its start not counted. One that
        ended otherwise meanwhile (a result, an error, a client's cancel, the server
        stopping) ends as it ended."""
        if not entry.preempt.is_set():
            return False
        if end.type != P.CANCELLED or entry.cancel.is_set() or self.stopping.is_set():
            return False
        entry.attempts = attempts
        if attempts == 0 and self.feed.durable is not None:
            self.feed.durable.undo_start(entry.job_id)
        return True

    def _after_loss(self, slot: _Slot, entry: Entry, exc: WorkerLost) -> P.Message | None:
        """Queue the job again for another actor, or end it: None when it was queued."""
        job_id = entry.job_id
        if self.stopping.is_set():
            return None  # stays on disk for the next start, like a shutdown's cancel
        if entry.attempts < MAX_ATTEMPTS:
            log.warning("job %s: %s died running it (%s); running it again", job_id, slot.name, exc)
            entry.avoid = slot.name
            entry.preempt.clear()  # it is not running now: no room left to make
            self.jobs.requeue(entry)
            return None
        log.error("job %s: a worker died running it %d times; giving up", job_id, entry.attempts)
        forget(self.feed, job_id)
        return P.error_message(
            ErrorCode.POISON_JOB,
            f"the worker running this job died {entry.attempts} times; it is not started again "
            "(try a smaller size or batch)",
            job_id,
        )

    def _reattach(self, slot: _Slot) -> None:
        """Wait for Ray to restart the actor (its model cache is empty then), then free it."""
        deadline = time.monotonic() + ACTOR_START_TIMEOUT_S
        info: ActorInfo | None = None
        while info is None:
            try:
                info = self.ray.get(slot.handle.info.remote(), timeout=ACTOR_START_TIMEOUT_S)
            except self.ray.exceptions.ActorUnavailableError as exc:
                # Ray answers at once while the actor restarts (its imports take a while):
                # ask again, until the deadline.
                if time.monotonic() < deadline and not self.stopping.wait(REATTACH_POLL_S):
                    continue
                self._lose(slot, exc)
                return
            except Exception as exc:
                self._lose(slot, exc)
                return
        log.info("ray: %s is back (pid %d)", slot.name, info.pid)
        with self._cond:
            slot.info = info
            slot.entry = None
            self._cond.notify_all()

    def _lose(self, slot: _Slot, exc: Exception) -> None:
        log.error("ray: %s did not come back: %s", slot.name, exc)
        with self._cond:
            slot.alive = False
            slot.entry = None
            self._cond.notify_all()

    def _remote(
        self, slot: _Slot, job: Job, *, on_progress: ProgressFn, should_cancel: Callable[[], bool]
    ) -> JobResult:
        """engine.run, on the slot's actor: events streamed back, a cancel forwarded."""
        stream = slot.handle.run.options(num_returns="streaming").remote(job)
        done = threading.Event()
        threading.Thread(
            target=when_set,
            args=(should_cancel, done, lambda: slot.handle.cancel.remote(job.job_id)),
            name="dreamwire-ray-cancel",
            daemon=True,
        ).start()
        end: ActorEvent | None = None
        try:
            for ref in stream:
                event: ActorEvent = self.ray.get(ref)
                if event.progress is not None:
                    on_progress(event.progress)
                else:
                    end = event
        except self.ray.exceptions.RayActorError as exc:
            raise WorkerLost(type(exc).__name__) from None
        finally:
            done.set()
        if end is None:
            raise WorkerLost("its event stream ended without an end")
        if end.place is not None:
            with self._cond:
                slot.info = ActorInfo(slot.info.pid, slot.info.device, end.place)
        if end.error is not None:
            raise DreamwireError.from_dict(end.error)
        if end.failure:
            raise RuntimeError(end.failure)
        assert end.result is not None
        return end.result


def _waiting(entry: Entry, default_model: str) -> dispatch.Waiting:
    return dispatch.Waiting(
        entry.job_id, entry.rank, entry.seq, entry.job.model or default_model, entry.avoid
    )
