"""The client every host uses to talk to a dreamwire backend.

It never starts a thread and never blocks unless asked to: hosts call `poll()` from a timer
on their UI thread (bpy.app.timers, QTimer) and get a list of events back; the CLI and the
tests use the blocking `run()`/`wait()` built on the same machinery.

Liveness is judged by heartbeats: the client pings every `heartbeat_interval` seconds and the
backend answers. Silence for `heartbeat_timeout` seconds means the backend is gone: the
state becomes "lost", the socket is replaced (so nothing stale is delivered later), and when
a backend answers again every job still open is looked up by id. Finished jobs come back
from the backend's output folder; jobs a dead backend never finished are reported lost.

A cancel is remembered until the backend answers it: one asked for while the backend is away
(a host's Cancel button during an outage) is sent again on the next `welcome`, instead of the
job being looked up, so a restarted backend that took the job back from its queue folder
drops it rather than running it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from . import events as ev
from . import protocol as P
from .errors import DreamwireError, ErrorCode
from .job import Job
from .result import JobResult

CLIENT_VERSION = "0.1.0"
_LOCAL_HOSTS = ("127.", "localhost", "[::1]", "::1")
# Cancel requests whose answer may still come (msg id -> job id); old ones are dropped past
# this many, so a backend that never answers cannot grow it without bound.
_MAX_CANCELS = 256


def is_local_address(address: str) -> bool:
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host.startswith(_LOCAL_HOSTS)


def read_key(key: str | bytes | Path, secret: bool = False) -> bytes:
    """A Z85 CurveZMQ key given as text or as a key file written by `dreamwire keys`."""
    if isinstance(key, bytes) and len(key) == 40:
        return key
    if isinstance(key, str) and len(key) == 40 and not Path(key).exists():
        return key.encode("ascii")
    try:
        public, secret_key = zmq.auth.load_certificate(str(key))
    except (OSError, ValueError) as exc:
        raise DreamwireError(
            ErrorCode.UNAUTHORIZED,
            f"{str(key)[:200]!r} is neither a 40-character Z85 key nor a key file: {exc}",
        ) from None
    chosen = secret_key if secret else public
    if chosen is None:
        raise DreamwireError(ErrorCode.UNAUTHORIZED, f"{key} holds no secret key")
    return chosen


class Client:
    def __init__(
        self,
        address: str,
        server_public_key: str | bytes | Path | None = None,
        client_secret_key: str | bytes | Path | None = None,
        *,
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float = 3.0,
        image_format: str | None = None,
        limits: P.Limits | None = None,
        name: str = "dreamwire-client",
        context: zmq.Context | None = None,
    ):
        self.address = address
        self.name = name
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        # Raw frames on the same machine (no copy, no compression); PNG/zlib across a network.
        self.image_format = image_format or ("raw" if is_local_address(address) else "png")
        self.limits = limits or P.Limits(max_message_bytes=2**31 - 1, max_images=64)
        self._ctx = context or zmq.Context.instance()
        self._server_key = read_key(server_public_key) if server_public_key is not None else None
        if client_secret_key is not None:
            self._secret = read_key(client_secret_key, secret=True)
        elif self._server_key is not None:
            self._secret = zmq.curve_keypair()[1]  # not listed on the server: will be refused
        else:
            self._secret = None
        # A stable routing id lets the backend (ROUTER_HANDOVER) route to our new socket
        # after a reconnect instead of to the dead one.
        self.client_id = uuid.uuid4().hex
        self.state = ev.CONNECTING
        self.welcome: ev.Welcome | None = None
        self._server_id = ""
        self._pending: dict[str, Job | None] = {}  # open jobs; the Job until accepted
        self._lost_jobs: set[str] = set()  # open jobs looked up after a backend restart
        self._cancelling: set[str] = set()  # open jobs cancelled, the backend not yet agreeing
        self._cancel_msgs: OrderedDict[str, str] = OrderedDict()  # unanswered cancel msg ids
        self._backlog: list[Any] = []  # events seen by run() that belong to other jobs
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._connect()

    # -- public API ----------------------------------------------------------------------
    def submit(self, job: Job) -> str:
        job.validate()
        self._pending[job.job_id] = job
        self._send(P.submit_message(job))
        return job.job_id

    def cancel(self, job_id: str) -> None:
        """Ask the backend to drop `job_id`; answered by a Cancelled event (or an ErrorEvent
        such as `not_owner`). Safe while the backend is away: the cancel is sent again when
        it answers, before anything else is asked about the job."""
        if job_id not in self._pending:  # not ours to follow: any answer is passed on as is
            self._send(P.Message(P.CANCEL, job_id=job_id))
            return
        self._cancelling.add(job_id)
        self._send_cancel(job_id)

    def fetch_result(self, job_id: str) -> None:
        """Ask for a job's result by id: it arrives as a ResultEvent (from the output folder
        if the job finished), an Accepted (still queued or running) or an ErrorEvent."""
        self._pending.setdefault(job_id, None)
        self._send(P.Message(P.FETCH_RESULT, job_id=job_id))

    def list_models(self) -> None:
        self._send(P.Message(P.LIST_MODELS))

    def poll(self) -> list[Any]:
        """Everything that happened since the last call. Never blocks."""
        out, self._backlog = self._backlog, []
        if self.state == ev.CLOSED:
            return out
        now = time.monotonic()
        if now - self._last_poll > self.heartbeat_timeout and self.state == ev.CONNECTED:
            # The host was busy (a render, a modal dialog) and did not poll: nobody pinged,
            # so silence proves nothing. Ping now and judge from here.
            self._last_recv = now
            self._last_ping = now
            self._send(P.Message(P.HEARTBEAT))
        self._last_poll = now
        out += self._drain_monitor()
        # Bounded, so a burst of progress messages cannot hold the host's UI thread.
        for _ in range(256):
            if self._sock is None or not self._sock.poll(0, zmq.POLLIN):
                break
            frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            self._last_recv = time.monotonic()
            out += self._handle(frames)
        if self.state in (ev.INCOMPATIBLE, ev.UNAUTHORIZED):
            return out
        if self.state == ev.CONNECTED and now - self._last_ping >= self.heartbeat_interval:
            self._last_ping = now
            self._send(P.Message(P.HEARTBEAT))
        if now - self._last_recv > self.heartbeat_timeout:
            out += self._lose(
                f"no answer from the backend at {self.address} for {self.heartbeat_timeout:g} s"
            )
        return out

    def wait(self, timeout: float) -> list[Any]:
        """Block up to `timeout` seconds until there is at least one event."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.poll()
            left = deadline - time.monotonic()
            if out or left <= 0 or self.state == ev.CLOSED:
                return out
            if self._sock is not None:
                self._sock.poll(int(min(left, self.heartbeat_interval / 2) * 1000) + 1, zmq.POLLIN)

    def connect_wait(self, timeout: float = 30.0) -> ev.Welcome:
        """Block until the backend has welcomed us; raise if it is incompatible or absent."""
        deadline = time.monotonic() + timeout
        while self.state != ev.CONNECTED:
            for e in self.wait(max(0.0, deadline - time.monotonic())):
                if isinstance(e, ev.ErrorEvent) and self.state in (
                    ev.INCOMPATIBLE,
                    ev.UNAUTHORIZED,
                ):
                    raise e.error
                if not isinstance(e, ev.ConnectionChanged | ev.Welcome):
                    self._backlog.append(e)
            if time.monotonic() >= deadline and self.state != ev.CONNECTED:
                raise DreamwireError(
                    ErrorCode.BACKEND_UNAVAILABLE,
                    f"no dreamwire backend answered at {self.address}",
                )
        assert self.welcome is not None
        return self.welcome

    def run(
        self,
        job: Job,
        timeout: float = 600.0,
        on_progress: Callable[[Any], None] | None = None,
        connect_timeout: float = 30.0,
    ) -> JobResult:
        """Submit `job` and block until its result; raise DreamwireError on error/cancel,
        or when no backend has answered within `connect_timeout` seconds."""
        job_id = self.submit(job)
        return self.wait_result(job_id, timeout, on_progress, connect_timeout)

    def wait_result(
        self,
        job_id: str,
        timeout: float = 600.0,
        on_progress: Callable[[Any], None] | None = None,
        connect_timeout: float = 30.0,
    ) -> JobResult:
        start = time.monotonic()
        deadline = start + timeout
        kept: list[Any] = []
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise DreamwireError(
                        ErrorCode.BACKEND_UNAVAILABLE, f"no result within {timeout:g} s", job_id
                    )
                if self.welcome is None and now - start > connect_timeout:
                    raise DreamwireError(
                        ErrorCode.BACKEND_UNAVAILABLE,
                        f"no dreamwire backend answered at {self.address}",
                        job_id,
                    )
                for e in self.wait(min(deadline - now, 1.0)):
                    if getattr(e, "job_id", None) != job_id:
                        kept.append(e)
                        if isinstance(e, ev.ErrorEvent) and self.state in (
                            ev.INCOMPATIBLE,
                            ev.UNAUTHORIZED,
                        ):
                            raise e.error
                    elif isinstance(e, ev.ResultEvent):
                        return e.result
                    elif isinstance(e, ev.ErrorEvent):
                        raise e.error
                    elif isinstance(e, ev.Cancelled):
                        raise DreamwireError(ErrorCode.CANCELLED, "the job was cancelled", job_id)
                    elif isinstance(e, ev.ProgressEvent) and on_progress is not None:
                        on_progress(e.progress)
        finally:
            self._backlog = kept + self._backlog

    def close(self) -> None:
        self._close_socket()
        self.state = ev.CLOSED

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    # -- internals -----------------------------------------------------------------------
    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.routing_id = b"c" + self.client_id.encode()
        sock.setsockopt(zmq.RCVHWM, 0)  # never drop replies on our side
        if self._server_key is not None:
            sock.curve_serverkey = self._server_key
            sock.curve_secretkey = self._secret
            sock.curve_publickey = zmq.curve_public(self._secret)
            self._monitor = sock.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED
            )
        sock.connect(self.address)
        self._sock = sock
        now = time.monotonic()
        self._last_recv = now
        self._last_ping = now
        self._last_poll = now
        self._send(self._hello())

    def _hello(self) -> P.Message:
        return P.Message(
            P.HELLO,
            {
                "protocol": P.PROTOCOL_VERSION,
                "client": self.name,
                "client_version": CLIENT_VERSION,
                "client_id": self.client_id,
                "image_format": self.image_format,
                # Pushed events this client reads (a backend sends none that are not here).
                "events": [P.MODELS_CHANGED],
            },
        )

    def _close_socket(self) -> None:
        if self._monitor is not None and self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _send(self, msg: P.Message) -> None:
        if self._sock is None:
            raise DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, "the client is closed")
        self._sock.send_multipart(P.encode(msg, self.image_format), copy=False)

    def _send_cancel(self, job_id: str) -> None:
        """A cancel of an open job, its answer watched for (`_cancel_refused`)."""
        msg = P.Message(P.CANCEL, job_id=job_id)
        self._cancel_msgs[msg.msg_id] = job_id
        while len(self._cancel_msgs) > _MAX_CANCELS:
            self._cancel_msgs.popitem(last=False)
        self._send(msg)

    def _lose(self, detail: str) -> list[Any]:
        """Replace the socket; report the loss once per outage."""
        first = self.state != ev.LOST
        self.state = ev.LOST
        self._close_socket()
        self._connect()
        return [ev.ConnectionChanged(ev.LOST, detail)] if first else []

    def _drain_monitor(self) -> list[Any]:
        out: list[Any] = []
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor is not None and self._monitor.poll(0, zmq.POLLIN):
            info = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            if info["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and self.state != ev.UNAUTHORIZED:
                self.state = ev.UNAUTHORIZED
                detail = f"the backend at {self.address} refused this client's key"
                out.append(ev.ConnectionChanged(ev.UNAUTHORIZED, detail))
                out.append(ev.ErrorEvent(DreamwireError(ErrorCode.UNAUTHORIZED, detail)))
        return out

    def _handle(self, frames: list[Any]) -> list[Any]:
        try:
            msg = P.decode(frames, self.limits)
        except P.ProtocolError as exc:
            if exc.code == ErrorCode.PROTOCOL_VERSION:
                return self._incompatible(exc.message)
            return [ev.ErrorEvent(exc)]
        try:
            return self._dispatch(msg)
        except (P.ProtocolError, KeyError, TypeError, ValueError) as exc:
            # A backend bug or a foreign peer: report it, never raise out of poll().
            err = (
                exc
                if isinstance(exc, DreamwireError)
                else DreamwireError(
                    ErrorCode.MALFORMED_MESSAGE,
                    f"bad {msg.type} from the backend: {exc}",
                    msg.job_id,
                )
            )
            return [ev.ErrorEvent(err)]

    def _dispatch(self, msg: P.Message) -> list[Any]:
        t = msg.type
        if t == P.WELCOME:
            return self._on_welcome(msg)
        if t == P.HEARTBEAT:
            sid = msg.body.get("server_id", "")
            if self._server_id and sid and sid != self._server_id:
                # The backend restarted between two heartbeats: greet it again.
                self._send(self._hello())
                self.state = ev.LOST
                return [ev.ConnectionChanged(ev.LOST, "the backend restarted")]
            return []
        if t == P.ACCEPTED:
            if msg.job_id in self._pending:
                self._pending[msg.job_id] = None  # accepted: no need to keep its images
            self._lost_jobs.discard(msg.job_id)
            return [
                ev.Accepted(
                    msg.job_id,
                    int(msg.body.get("position", 0)),
                    bool(msg.body.get("reattached", False)),
                )
            ]
        if t == P.PROGRESS:
            return [ev.ProgressEvent(P.parse_progress(msg))]
        if t == P.RESULT:
            if msg.job_id not in self._pending:
                return []  # a second copy (pushed and fetched across a reconnect): once is enough
            self._forget(msg.job_id)
            return [ev.ResultEvent(P.parse_result(msg))]
        if t == P.CANCELLED:
            self._cancel_msgs.pop(msg.reply_to, None)
            self._forget(msg.job_id)
            return [ev.Cancelled(msg.job_id, str(msg.body.get("message", "")))]
        if t in (P.MODELS, P.MODELS_CHANGED):
            if self.welcome is not None:
                # Every capability key the answer carries, read as a welcome reads it (a
                # merged checkpoint comes with its family, modes and defaults too).
                fresh = ev.Welcome.from_body({**msg.body, "protocol": self.welcome.protocol})
                for f in dataclasses.fields(ev.Welcome):
                    if f.name in msg.body and f.name not in ("protocol", "server_id"):
                        setattr(self.welcome, f.name, getattr(fresh, f.name))
            if t == P.MODELS_CHANGED:
                return [ev.ModelsChanged(msg.body)]
            return [ev.ModelsEvent(msg.body)]
        if t == P.ERROR:
            err = DreamwireError.from_dict(msg.body)
            if err.code == ErrorCode.PROTOCOL_VERSION:
                return self._incompatible(err.message)
            if msg.reply_to in self._cancel_msgs:
                return self._cancel_refused(self._cancel_msgs.pop(msg.reply_to), err)
            if err.code == ErrorCode.JOB_NOT_FOUND and err.job_id in self._lost_jobs:
                err = DreamwireError(
                    ErrorCode.BACKEND_LOST,
                    "the backend stopped before this job finished; submit it again",
                    err.job_id,
                )
            if err.job_id in self._pending:
                self._forget(err.job_id)
            return [ev.ErrorEvent(err)]
        return [
            ev.ErrorEvent(
                DreamwireError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unexpected {t!r} from backend")
            )
        ]

    def _cancel_refused(self, job_id: str, err: DreamwireError) -> list[Any]:
        """The backend answered a cancel with an error."""
        if err.code != ErrorCode.JOB_NOT_FOUND:
            self._cancelling.discard(job_id)  # e.g. not_owner: the job goes on; say so
            return [ev.ErrorEvent(err)]
        if job_id not in self._pending:
            return []  # it ended (result or cancel) before this cancel arrived: nothing to say
        # The backend does not have it (never accepted, or lost in a crash): it will not run,
        # which is what the cancel asked for.
        self._forget(job_id)
        return [ev.Cancelled(job_id, "the backend no longer had this job")]

    def _forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)
        self._lost_jobs.discard(job_id)
        self._cancelling.discard(job_id)

    def _incompatible(self, text: str) -> list[Any]:
        self.state = ev.INCOMPATIBLE
        err = DreamwireError(ErrorCode.PROTOCOL_VERSION, text)
        return [ev.ConnectionChanged(ev.INCOMPATIBLE, text), ev.ErrorEvent(err)]

    def _on_welcome(self, msg: P.Message) -> list[Any]:
        welcome = ev.Welcome.from_body(msg.body)
        if welcome.protocol != P.PROTOCOL_VERSION:
            return self._incompatible(
                f"the backend speaks protocol {welcome.protocol}, this client {P.PROTOCOL_VERSION}"
            )
        was = self.state
        restarted = bool(self._server_id) and welcome.server_id != self._server_id
        self.welcome = welcome
        self._server_id = welcome.server_id
        self.state = ev.CONNECTED
        out: list[Any] = []
        if was != ev.CONNECTED:
            detail = "the backend restarted" if restarted else ""
            out.append(ev.ConnectionChanged(ev.CONNECTED, detail))
        out.append(welcome)
        if was == ev.LOST or restarted:
            self._resume()
        return out

    def _resume(self) -> None:
        """After a reconnect: cancel again what was cancelled (the backend may have taken the
        job back from its queue folder), resend jobs never accepted (submit is idempotent by
        job id), look up the others (their results may have finished meanwhile)."""
        for job_id, job in list(self._pending.items()):
            if job_id in self._cancelling:
                self._send_cancel(job_id)
            elif job is not None:
                self._send(P.submit_message(job))
            else:
                self._lost_jobs.add(job_id)
                self._send(P.Message(P.FETCH_RESULT, job_id=job_id))
