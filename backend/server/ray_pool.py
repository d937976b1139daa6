"""The Ray actor pool: `dreamwire serve --ray [ADDRESS]` runs jobs on Ray actors (ray_actor.py),
while the ZeroMQ front, the durable queue and the result store stay in this process.

- One actor per GPU of the cluster (num_gpus=1); on a CPU-only cluster `--ray-actors` actors
  (default 2) share its CPUs. Each holds its own engine and model cache.
- A dispatcher thread takes jobs from the JobQueue (priority order, as the single worker
  does) whenever an actor is idle, and gives each to an idle actor already holding its model,
  else to the least loaded one (affinity.py). Each actor has a thread here that streams the
  job's events back (worker.run_entry: the same saving, durable bookkeeping and error
  mapping as the in-process worker) and forwards a cancel to the actor.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult

from .affinity import Candidate, pick_worker
from .executor import Feed, Poster, ProgressFn, WorkerInfo, WorkerLost, stop_running, when_set
from .jobqueue import Entry
from .ray_actor import ActorEvent, ActorInfo, EngineActor
from .worker import forget, run_entry

log = logging.getLogger("dreamwire.server")

# A job is run at most this often when the actors running it die.
MAX_ATTEMPTS = 2
CPU_ACTORS = 2  # on a cluster without GPUs, unless --ray-actors says otherwise
ACTOR_START_TIMEOUT_S = 600.0


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
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._own_cluster = not options.address
        self.ray.init(address=options.address or None, include_dashboard=False)
        self.slots = self._start_actors(options)
        self._threads = [
            threading.Thread(target=self._dispatch, name="dreamwire-ray-dispatch", daemon=True),
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
                name=f"dreamwire-actor-{i}",
                namespace="dreamwire",
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
                    models=list(s.info.models),
                    pid=s.info.pid,
                    job=s.entry.job_id if s.entry is not None else "",
                )
                for s in self.slots
            ]

    # -- scheduling ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            with self._cond:
                idle = [s for s in self.slots if s.alive and s.entry is None]
                if not idle:
                    self._cond.wait(0.2)
                    continue
            entry = self.jobs.take(timeout=0.2)
            if entry is None:
                continue
            with self._cond:
                slot = self._choose(entry)
                if slot is None:  # only the actor that died under it is idle: wait
                    self.jobs.requeue(entry)
                    self._cond.wait(0.2)
                    continue
                slot.entry = entry
            slot.inbox.put(entry)

    def _choose(self, entry: Entry) -> _Slot | None:
        idle = {s.name: s for s in self.slots if s.alive and s.entry is None}
        avoid = entry.avoid if len([s for s in self.slots if s.alive]) > 1 else ""
        model = entry.job.model or self.default_model()
        picked = pick_worker(
            model,
            [Candidate(s.name, tuple(s.info.models), s.jobs_run) for s in idle.values()],
            avoid,
        )
        return idle[picked.name] if picked is not None else None

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
        lost = requeued = False
        try:
            end = run_entry(
                entry,
                lambda job, **kw: self._remote(slot, job, **kw),
                self.feed,
                poster,
                self.stopping,
            )
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
                self._cond.notify_all()
            if end is not None:
                poster.post(entry.job_id, end)
        if lost and not self.stopping.is_set():
            self._reattach(slot)

    def _after_loss(self, slot: _Slot, entry: Entry, exc: WorkerLost) -> P.Message | None:
        """Queue the job again for another actor, or end it: None when it was queued."""
        job_id = entry.job_id
        if self.stopping.is_set():
            return None  # stays on disk for the next start, like a shutdown's cancel
        if entry.attempts < MAX_ATTEMPTS:
            log.warning("job %s: %s died running it (%s); running it again", job_id, slot.name, exc)
            entry.avoid = slot.name
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
        try:
            info = self.ray.get(slot.handle.info.remote(), timeout=ACTOR_START_TIMEOUT_S)
        except Exception as exc:
            log.error("ray: %s did not come back: %s", slot.name, exc)
            with self._cond:
                slot.alive = False
                slot.entry = None
                self._cond.notify_all()
            return
        log.info("ray: %s is back (pid %d)", slot.name, info.pid)
        with self._cond:
            slot.info = info
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
        with self._cond:
            slot.info = ActorInfo(slot.info.pid, slot.info.device, end.models)
        if end.error is not None:
            raise DreamwireError.from_dict(end.error)
        if end.failure:
            raise RuntimeError(end.failure)
        assert end.result is not None
        return end.result
