"""Threads that do slow work for the server thread and hand it back: each takes a task,
does `work(task)`, puts the task on `finished` and wakes the server thread through its
inproc PULL socket (each thread has its own PUSH: ZeroMQ sockets belong to one thread).
The decode pool and the queue writer are both this with their own work."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import zmq

T = TypeVar("T")


def drain(q: queue.Queue[T]) -> list[T]:
    """Everything a queue holds now, without waiting."""
    out: list[T] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


class TaskThreads(Generic[T]):
    def __init__(
        self,
        ctx: zmq.Context,
        wake_address: str,
        work: Callable[[T], None],
        name: str,
        threads: int = 1,
    ):
        self.ctx = ctx
        self.wake_address = wake_address
        self.work = work
        self.finished: queue.Queue[T] = queue.Queue()
        self._tasks: queue.Queue[T | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def put(self, task: T) -> None:
        self._tasks.put(task)

    def take_finished(self) -> list[T]:
        return drain(self.finished)

    def close(self, timeout: float) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _run(self) -> None:
        wake = self.ctx.socket(zmq.PUSH)
        wake.linger = 0
        wake.connect(self.wake_address)
        try:
            while (task := self._tasks.get()) is not None:
                self.work(task)
                self.finished.put(task)
                # If the wake frame is dropped, the server finds `finished` at its next poll.
                with contextlib.suppress(zmq.ZMQError):
                    wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(0)
