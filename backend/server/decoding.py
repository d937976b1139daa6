"""Decoding inbound messages off the server thread.

The server thread answers every peer, heartbeats included, so it must never spend long on
one message. It opens each message's envelope itself (protocol.open_envelope: frame sizes,
header and buffer descriptions, at most 64 KiB of JSON) and decodes a light message (no
binary frames, a small body) on the spot; the body and arrays of any other message are
decoded here, by a small pool of threads, within a time budget, and the result is handed
back through the server's inproc wake socket. The server keeps each client's messages in
order (see Server._accept), so a cancel never overtakes the submit it is about.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode

from .pngread import decode_png
from .task_threads import TaskThreads

log = logging.getLogger("dreamwire.server")

DECODE_THREADS = 2
# Time budget of one message's body and arrays; past it the sender gets limit_exceeded.
DECODE_SECONDS = 20.0
# A body up to this size with no binary frames is parsed on the server thread (well under a
# millisecond); anything bigger goes to the pool.
INLINE_BODY_BYTES = 64 * 1024
# The frames of messages decoding or waiting for a decode thread, all clients together, may
# take this many times the largest message; one client's messages waiting behind its own
# decode are counted too. Past either, the sender gets queue_full: the frames are already
# read from the socket, so this is what bounds the memory a flood of them can hold.
BACKLOG_MESSAGES = 2
MAX_WAITING_PER_CLIENT = 256


@dataclass
class Inbound:
    """One client message on its way in: its envelope, then its decoded form or error."""

    identity: bytes
    envelope: P.Envelope
    message: P.Message | None = None
    error: DreamwireError | None = None

    @property
    def ready(self) -> bool:
        return self.message is not None or self.error is not None

    @property
    def nbytes(self) -> int:
        env = self.envelope
        return env.body_bytes + sum(spec.nbytes for spec in env.specs)

    @property
    def light(self) -> bool:
        env = self.envelope
        return not env.frames and env.body_bytes <= INLINE_BODY_BYTES

    def decode(self, budget_s: float = DECODE_SECONDS) -> None:
        """Decode body and arrays; every failure becomes `error`, with the message's job id."""
        env = self.envelope
        try:
            deadline = time.monotonic() + budget_s
            self.message = P.open_content(env, writable=True, png=decode_png, deadline=deadline)
        except DreamwireError as exc:
            exc.job_id = exc.job_id or env.job_id[:64]
            self.error = exc
        except Exception as exc:  # a decoder bug costs this message, not the server
            log.exception("decoding a %s message failed", env.type)
            self.error = DreamwireError(
                ErrorCode.INTERNAL, f"decoding failed: {type(exc).__name__}", env.job_id[:64]
            )


class DecodePool:
    """Threads that decode `Inbound` messages for the server thread (task_threads.py), with
    the backlog the server thread counts."""

    def __init__(self, ctx: zmq.Context, wake_address: str, threads: int = DECODE_THREADS):
        self._threads = TaskThreads(ctx, wake_address, Inbound.decode, "dreamwire-decode", threads)
        # Submitted and not yet taken back (the server thread's own counts).
        self.in_flight = 0
        self.in_flight_bytes = 0

    def start(self) -> None:
        self._threads.start()

    def admits(self, item: Inbound, max_message_bytes: int) -> bool:
        """Whether the backlog has room for `item` (there is always room for one)."""
        budget = BACKLOG_MESSAGES * max_message_bytes
        return self.in_flight == 0 or self.in_flight_bytes + item.nbytes <= budget

    def submit(self, item: Inbound) -> None:
        self.in_flight += 1
        self.in_flight_bytes += item.nbytes
        self._threads.put(item)

    def take_finished(self) -> list[Inbound]:
        done = self._threads.take_finished()
        self.in_flight -= len(done)
        self.in_flight_bytes -= sum(item.nbytes for item in done)
        return done

    def close(self, timeout: float = 5.0) -> None:
        self._threads.close(timeout)
