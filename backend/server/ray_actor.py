"""The engine inside a Ray actor: one per GPU (or CPU share) of the cluster, each with its own
model cache. ray_pool.py creates them and feeds them jobs; this module does not import ray,
so it loads wherever the backend does.

`run` is a streaming generator method: the engine runs on a thread of its own (its progress
callback cannot yield), and every progress event, then one end event, is yielded to the
front as it happens. The actor is threaded (max_concurrency=2), so `cancel` is served while
`run` is busy and sets the flag the engine checks at every step.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dreamwire.backend.engine.admission import Workplace
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult, Progress


@dataclass
class ActorEvent:
    """What an actor streams: progress (previews included), or the job's end: a result, a
    DreamwireError as its dict, or another exception's text."""

    progress: Progress | None = None
    result: JobResult | None = None
    error: dict | None = None
    failure: str = ""
    place: Workplace | None = None  # the actor after the job (an end only)

    @property
    def is_end(self) -> bool:
        return self.progress is None


@dataclass(frozen=True)
class ActorInfo:
    """An actor's process, device and memory free now, as the front schedules and admits
    jobs by (dispatch.py) and the welcome lists it."""

    pid: int
    device: str
    place: Workplace

    @property
    def models(self) -> list[str]:
        return list(self.place.models)


class EngineActor:
    def __init__(self, make_engine: Callable[[], Any]):
        # Built here, in the actor's process: `make_engine` is the CLI's (cli/serve.py),
        # pickled by reference, so the server package never imports the CLI.
        self.engine = make_engine()
        self._cancels: dict[str, threading.Event] = {}

    def info(self) -> ActorInfo:
        return ActorInfo(os.getpid(), self.engine.info.describe(), self.engine.workplace())

    def cancel(self, job_id: str) -> bool:
        flag = self._cancels.get(job_id)
        if flag is not None:
            flag.set()
        return flag is not None

    def run(self, job: Job) -> Iterator[ActorEvent]:
        flag = self._cancels.setdefault(job.job_id, threading.Event())
        events: queue.Queue[ActorEvent] = queue.Queue()
        threading.Thread(
            target=self._work, args=(job, flag, events), name="dreamwire-actor-job", daemon=True
        ).start()
        try:
            while True:
                event = events.get()
                yield event
                if event.is_end:
                    return
        finally:
            self._cancels.pop(job.job_id, None)

    def _work(self, job: Job, flag: threading.Event, events: queue.Queue[ActorEvent]) -> None:
        try:
            result = self.engine.run(
                job,
                on_progress=lambda p: events.put(ActorEvent(progress=p)),
                should_cancel=flag.is_set,
            )
            end = ActorEvent(result=result)
        except DreamwireError as exc:
            end = ActorEvent(error=exc.to_dict())
        except MemoryError:
            end = ActorEvent(
                error=DreamwireError(ErrorCode.OUT_OF_MEMORY, "out of memory").to_dict()
            )
        except Exception as exc:  # the front maps it as the in-process worker would
            end = ActorEvent(failure=f"{type(exc).__name__}: {exc}")
        end.place = self.engine.workplace()
        events.put(end)
