"""The Ray actor pool: `dreamwire serve --ray [ADDRESS]` runs jobs on Ray actors (ray_actor.py),
while the ZeroMQ front, the durable queue and the result store stay in this process.

- One actor per GPU of the cluster (num_gpus=1); on a CPU-only cluster `--ray-actors` actors
  (default 2) share its CPUs. Each holds its own engine and model cache.
- A dispatcher thread asks the pool's policy (pool_policy.py, over dispatch.py: priority,
  memory, model affinity, preemption, re-runs; Ray-free and unit-tested) which waiting jobs
  start on which idle actors, whenever the queue or an actor changes. Each actor has a
  thread here that streams the job's events back (worker.run_entry: the same saving, durable
  bookkeeping and error mapping as the in-process worker), forwards a cancel to the actor,
  and tells the policy how the run ended.
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

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult

from .executor import Feed, Poster, ProgressFn, WorkerInfo, WorkerLost, stop_running, when_set
from .jobqueue import Entry
from .pool_policy import PoolPolicy, Slot
from .ray_actor import ActorEvent, ActorInfo, EngineActor
from .worker_memory import Estimate, refusal_everywhere

log = logging.getLogger("dreamwire.server")

CPU_ACTORS = 2  # on a cluster without GPUs, unless --ray-actors says otherwise
ACTOR_START_TIMEOUT_S = 600.0
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
class _Actor:
    """One Ray actor: its handle, the jobs handed to it, and the policy's view of it."""

    slot: Slot
    handle: Any
    inbox: queue.Queue[Entry] = field(default_factory=queue.Queue)

    @property
    def name(self) -> str:
        return self.slot.name


class RayPool:
    """The Executor of a Ray cluster (executor.py)."""

    def __init__(self, feed: Feed, options: PoolOptions, default_model: Callable[[], str]):
        self.ray = import_ray()
        self.feed = feed
        self.jobs = feed.jobs
        self.outbox = feed.outbox
        self.estimate = options.estimate
        self.stopping = threading.Event()
        # An address re-attaches to a running cluster: a front restarted after a crash
        # makes new actors there (the old ones died with it) and runs its queue folder.
        # "local": a new cluster of our own, never one `ray start` left on this machine
        # (Ray's default would join whatever /tmp/ray/ray_current_cluster names).
        self.ray.init(address=options.address or "local", include_dashboard=False)
        if options.address:
            log.info("ray: attached to the cluster at %s", options.address)
        else:
            log.info("ray: started a local cluster")
        self.actors = self._start_actors(options)
        self.policy = PoolPolicy(
            self.jobs,
            [a.slot for a in self.actors],
            feed.durable,
            default_model,
            options.estimate,
        )
        self._threads = [
            threading.Thread(target=self._dispatch, name="dreamwire-ray-dispatch", daemon=True),
            threading.Thread(target=self._refresh, name="dreamwire-ray-refresh", daemon=True),
            *(
                threading.Thread(
                    target=self._serve, args=(a,), name=f"dreamwire-{a.name}", daemon=True
                )
                for a in self.actors
            ),
        ]

    def _start_actors(self, options: PoolOptions) -> list[_Actor]:
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
        actors = [
            _Actor(Slot(f"actor-{i}", info), h)
            for i, (h, info) in enumerate(zip(handles, infos, strict=True))
        ]
        for a in actors:
            log.info("ray: %s on %s (pid %d)", a.name, a.slot.info.device, a.slot.info.pid)
        return actors

    # -- Executor ------------------------------------------------------------------------
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        stop_running(self.jobs)  # stop at the next step; they stay queued on disk
        for t in self._threads:
            t.join(timeout)
        for a in self.actors:
            self.ray.kill(a.handle)
        # Disconnects from a cluster given by address (its processes are not ours) and stops
        # a local one. Also what lets the process end: Ray's driver threads are not daemons,
        # and a process that ends without running atexit (os._exit, as a forked child does)
        # would wait on them for ever.
        self.ray.shutdown()

    def workers(self) -> list[WorkerInfo]:
        return self.policy.workers()

    def check_memory(self, job: Job) -> None:
        """Refuse (limit_exceeded) a job that fits no live actor's memory free now."""
        if self.estimate is None:
            return
        refused = refusal_everywhere(job, self.policy.placed(), self.estimate)
        if refused is not None:
            raise refused

    # -- scheduling ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        inboxes = {a.name: a.inbox for a in self.actors}
        while not self.stopping.is_set():
            try:
                for start in self.policy.dispatch():
                    inboxes[start.slot.name].put(start.entry)
            except Exception:  # the thread must outlive a bug: the jobs wait, not vanish
                log.exception("ray: dispatch failed")
            self.jobs.wait_for_jobs(0.2)  # a put, a re-queue, or an actor freed (nudge)

    def _refresh(self) -> None:
        """Ask the idle actors what they hold and what is free, now and then."""
        handles = {a.name: a.handle for a in self.actors}
        while not self.stopping.wait(REFRESH_S):
            for slot in self.policy.idle():
                try:
                    info = self.ray.get(handles[slot.name].info.remote(), timeout=REFRESH_S)
                except Exception:  # dying or restarting: the job's thread deals with it
                    continue
                self.policy.update_info(slot, info)

    # -- one actor -----------------------------------------------------------------------
    def _serve(self, actor: _Actor) -> None:
        poster = Poster(self.feed)
        try:
            while not self.stopping.is_set():
                try:
                    entry = actor.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._run(actor, entry, poster)
        finally:
            poster.close()

    def _run(self, actor: _Actor, entry: Entry, poster: Poster) -> None:
        ending = self.policy.run(
            actor.slot,
            entry,
            lambda job, **kw: self._remote(actor, job, **kw),
            self.feed,
            poster,
            self.stopping,
        )
        self.jobs.nudge()  # the dispatcher: an actor may be free
        if ending.message is not None:
            poster.post(entry.job_id, ending.message)
        if ending.actor_died and not self.stopping.is_set():
            self._reattach(actor)

    def _reattach(self, actor: _Actor) -> None:
        """Wait for Ray to restart the actor (its model cache is empty then), then free it."""
        deadline = time.monotonic() + ACTOR_START_TIMEOUT_S
        info: ActorInfo | None = None
        while info is None:
            try:
                info = self.ray.get(actor.handle.info.remote(), timeout=ACTOR_START_TIMEOUT_S)
            except self.ray.exceptions.ActorUnavailableError as exc:
                # Ray answers at once while the actor restarts (its imports take a while):
                # ask again, until the deadline.
                if time.monotonic() < deadline and not self.stopping.wait(REATTACH_POLL_S):
                    continue
                self.policy.actor_lost(actor.slot, str(exc))
                return
            except Exception as exc:
                self.policy.actor_lost(actor.slot, str(exc))
                return
        self.policy.actor_back(actor.slot, info)
        self.jobs.nudge()

    def _remote(
        self, actor: _Actor, job: Job, *, on_progress: ProgressFn, should_cancel: Callable[[], bool]
    ) -> JobResult:
        """engine.run, on the actor: events streamed back, a cancel forwarded."""
        stream = actor.handle.run.options(num_returns="streaming").remote(job)
        done = threading.Event()
        threading.Thread(
            target=when_set,
            args=(should_cancel, done, lambda: actor.handle.cancel.remote(job.job_id)),
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
            self.policy.update_place(actor.slot, end.place)
        if end.error is not None:
            raise DreamwireError.from_dict(end.error)
        if end.failure:
            raise RuntimeError(end.failure)
        assert end.result is not None
        return end.result
