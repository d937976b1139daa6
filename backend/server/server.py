"""The server thread: owns the ROUTER socket, answers every peer, feeds the GPU worker.

Rules it keeps (PROTOCOL.md, "Backend"):
- every inbound message is size-checked before it is decoded, and anything wrong gets an
  error reply with a stable code; nothing a peer sends can end this loop: an unexpected
  exception while handling one message is logged and answered `internal`;
- nothing blocks this thread: a message with binary frames or a large body is decoded by
  the decode pool (decoding.py), within a time budget, while this thread goes on answering
  heartbeats; each client's messages are still handled in the order they were sent;
  a large accepted job is written to the queue folder by the writer thread
  (queue_writer.py) and `accepted` goes out once it is there;
- progress and results go only to the client told about the job (the submitter, or
  whoever fetched it after a reconnect); a client that has gone away costs nothing, because
  a ROUTER drops messages for peers it no longer has. Only the job's owner (owners.py) may
  cancel it; every cancel is answered;
- results are saved by the worker before they are sent, so fetch-result can always read
  them back from the output folder;
- with a queue folder (`ServerConfig.queue_dir`, OUT/queue for `dreamwire serve`), every
  accepted job is written there before `accepted` is sent and removed once its result or
  error is final or a client cancels it (before `cancelled` is sent); `restore_queue()` puts
  the jobs a killed backend left there back in the queue, so a reconnecting client
  reattaches to them (durable.py), except a job the backend died running twice already:
  that one is stored as failed (`poison_job`) and never started again;
- a `live` job (Krita's live preview) goes ahead of every other class and replaces the
  submitting client's previous live job: still queued, it is cancelled at once; running, it
  is asked to stop at its next step; either way the client told gets `cancelled` with a
  message.
  A stale live frame is worthless, so live jobs are never written to the queue folder.
- whenever a rescan of the model folders finds the library changed (a `list_models`, a job
  naming a model not seen yet, or the watch on the roots: model_watch.py), every client
  whose hello asked for it gets `models_changed` with the fresh lists, unasked.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import PRIORITIES, Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.model_names import stem
from dreamwire.shared.result import JobResult

from .decoding import MAX_WAITING_PER_CLIENT, DecodePool, Inbound
from .durable import DurableQueue
from .executor import Executor, Feed
from .jobqueue import JobQueue
from .model_watch import ModelWatch
from .owners import Owners
from .queue_writer import ASYNC_WRITE_BYTES, PendingSubmit, QueueWriter
from .worker import Worker, cancelled_message

log = logging.getLogger("dreamwire.server")

SERVER_VERSION = "0.1.0"
# The least time between two scans of the model folders that `list_models` (or a job
# naming a model not seen yet) asks for.
RESCAN_INTERVAL_S = 2.0
LIVE = "live"  # the priority class whose jobs supersede the same client's previous one
CAPABILITY_KEYS = (
    "device",
    "vram_free",
    "models",
    "vaes",
    "loras",
    "embeddings",
    "controlnets",
    "samplers",
)
# Capability keys that change with no change to the library: not a reason to tell anyone.
VOLATILE_KEYS = ("vram_free",)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # job ids name files in the output folder
# A job is started at most this often: the backend dying every time it runs it means the
# job kills it (a poison job), so the next restart stores it as failed instead.
MAX_STARTS = 2


class MemoryAdmission(Protocol):
    """What the server asks of its engine before accepting a job (engine/admission.py)."""

    def check_memory(self, job: Job) -> None:
        """Raise DreamwireError(limit_exceeded) when the job cannot fit the memory free now."""


@dataclass
class ServerConfig:
    bind: str = "tcp://127.0.0.1:5790"
    limits: P.Limits = field(default_factory=P.Limits)
    keys_dir: Path | None = None
    client_keys: list[Path] = field(default_factory=list)
    # Accepted jobs are kept here until final (None: in memory only).
    queue_dir: Path | None = None
    rejected_dir: Path | None = None
    # Model roots to watch for added, removed or rewritten files (model_watch.py), and how
    # often to look, in seconds; no roots or 0: only requests rescan.
    watch_roots: list[Path] = field(default_factory=list)
    watch_interval_s: float = 0.0


class Server:
    def __init__(
        self,
        engine: Any,
        save: Callable[[Job, JobResult], JobResult],
        load: Callable[[str], JobResult | None],
        config: ServerConfig,
        context: zmq.Context | None = None,
        save_failure: Callable[[Job, DreamwireError], None] | None = None,
        executor: Callable[[Feed], Executor] | None = None,
    ):
        """`executor` builds what runs the jobs (a Ray actor pool: ray_pool.py); None: the
        in-process worker on `engine`. `engine` itself always answers for the library
        (capabilities, model checks); the executor for memory admission, per worker."""
        self.engine = engine
        self.load = load
        # Keeps a final error where `load` finds it (store.py); None: nowhere to keep one.
        self.save_failure = save_failure
        self.config = config
        self.limits = config.limits
        self.server_id = uuid.uuid4().hex
        self.ctx = context or zmq.Context.instance()
        self.jobs = JobQueue()  # its limit counts jobs being written too: _submit
        self.owners = Owners()
        self.formats: dict[bytes, str] = {}  # routing id -> image format it asked for
        # Clients whose hello asked for `models_changed` (an older client could not read it).
        self.model_listeners: set[bytes] = set()
        self.live: dict[bytes, str] = {}  # routing id -> the newest live job it submitted
        self._wake_address = f"inproc://dreamwire-wake-{self.server_id}"
        self._stop = threading.Event()
        self._auth = None
        self.address = ""
        self.capabilities = self._capabilities()
        self._last_rescan = time.monotonic()  # the library scanned its folders just now
        self.watch = (
            ModelWatch(config.watch_roots, config.watch_interval_s, engine.rescan_models)
            if config.watch_roots and config.watch_interval_s > 0
            else None
        )
        self.durable: DurableQueue | None = None
        if config.queue_dir is not None:
            rejected = config.rejected_dir or config.queue_dir.with_name(
                config.queue_dir.name + "-rejected"
            )
            self.durable = DurableQueue(config.queue_dir, rejected)
        feed = Feed(self.jobs, save, self.ctx, self._wake_address, self.durable)
        self.worker: Executor = executor(feed) if executor is not None else Worker(engine, feed)
        self.decoder = DecodePool(self.ctx, self._wake_address)
        # Large accepted jobs go to disk on the writer's thread; until then they wait here.
        self.writer = (
            QueueWriter(self.durable, self.ctx, self._wake_address) if self.durable else None
        )
        self._pending: dict[str, PendingSubmit] = {}
        # Per client, its messages not handled yet because one before them is decoding.
        self._waiting: dict[bytes, deque[Inbound]] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def bind(self) -> str:
        """Bind the ROUTER; return the address actually bound (port 0 resolved)."""
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.router_handover = 1  # a reconnecting client takes its routing id back
        # libzmq drops (disconnects) any peer whose frame exceeds this, before we see it.
        self.router.maxmsgsize = self.limits.max_message_bytes
        if self.config.keys_dir is not None:
            from .auth import load_client_keys, secure_socket

            keys = load_client_keys(self.config.client_keys)
            self._auth = secure_socket(self.ctx, self.router, self.config.keys_dir, keys, log)
            log.info("CurveZMQ on; %d client key(s) allowed", len(keys))
        bind = self.config.bind
        if bind.startswith("tcp://") and bind.endswith(":0"):
            bind = bind[:-2] + ":*"
        self.router.bind(bind)
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.wake = self.ctx.socket(zmq.PULL)
        self.wake.linger = 0
        self.wake.bind(self._wake_address)
        return self.address

    def stop(self) -> None:
        self._stop.set()

    def restore_queue(self) -> list[str]:
        """Queue again the jobs the queue folder holds (call before serving); their ids."""
        if self.durable is None:
            return []
        restored: list[str] = []
        for stored in self.durable.load_entries():
            job = stored.job
            if self._stored(job.job_id):
                # Killed after saving its result, before forgetting the entry: it is done.
                self.durable.remove(job.job_id)
                continue
            if stored.starts >= MAX_STARTS:
                self._fail_poison(job, stored.starts)
                continue
            self.jobs.put(job)
            self.owners.restored(job.job_id, stored.owner)
            restored.append(job.job_id)
            log.info(
                "job %s: restored from the queue folder (%s priority)", job.job_id, job.priority
            )
        return restored

    def _fail_poison(self, job: Job, starts: int) -> None:
        err = DreamwireError(
            ErrorCode.POISON_JOB,
            f"the backend stopped {'twice' if starts == 2 else f'{starts} times'} while "
            "running this job; it is not started again (try a smaller size or batch)",
            job.job_id,
        )
        log.error("job %s: %s", job.job_id, err.message)
        if self.save_failure is not None:
            try:
                self.save_failure(job, err)
            except OSError as exc:  # still never started again: the entry goes regardless
                log.error("job %s: could not store its failure: %s", job.job_id, exc)
        self._forget_durable(job.job_id)

    def _forget_durable(self, job_id: str) -> None:
        if self.durable is not None:
            self.durable.remove(job_id)

    def serve_forever(self) -> None:
        self.worker.start()
        self.decoder.start()
        if self.writer is not None:
            self.writer.start()
        if self.watch is not None:
            self.watch.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(250))
                if self.wake in ready:
                    while self.wake.poll(0):
                        self.wake.recv(zmq.NOBLOCK)
                    self._flush_outbox()
                # Every turn, not only on a wake-up: a wake frame may have been dropped.
                self._collect_decoded()
                self._collect_written()
                if self.watch is not None and self.watch.take():
                    self._refresh_capabilities()  # the watch has read the folders again
                if self.router in ready:
                    # Bounded so a flood from one peer cannot starve the outbox.
                    for _ in range(64):
                        if not self.router.poll(0):
                            break
                        self._receive(self.router.recv_multipart(zmq.NOBLOCK, copy=False))
        finally:
            if self.watch is not None:
                self.watch.stop()
            self.decoder.close()
            if self.writer is not None:
                self.writer.close()
            self.worker.stop(timeout=5)
            self.router.close(0)
            self.wake.close(0)
            if self._auth is not None:
                self._auth.stop()

    # -- outbound ------------------------------------------------------------------------
    def _send(self, identity: bytes, msg: P.Message) -> None:
        fmt = self.formats.get(identity, "raw")
        try:
            frames = P.encode(msg, fmt)
            self.router.send_multipart([identity, *frames], copy=False)
        except zmq.ZMQError as exc:  # e.g. the peer's queue is full: drop, keep serving
            log.warning("could not send %s to a client: %s", msg.type, exc)
        except Exception:  # an unencodable result must cost that reply, not the server
            log.exception("could not encode %s for job %s", msg.type, msg.job_id)
            if msg.type != P.ERROR:
                err = DreamwireError(
                    ErrorCode.INTERNAL, f"the backend could not send its {msg.type}", msg.job_id
                )
                self._send(identity, P.Message(P.ERROR, err.to_dict(), job_id=msg.job_id))

    def _error(self, identity: bytes, err: DreamwireError, reply_to: str = "") -> None:
        self._send(
            identity, P.Message(P.ERROR, err.to_dict(), job_id=err.job_id, reply_to=reply_to)
        )

    def _flush_outbox(self) -> None:
        while True:
            try:
                job_id, msg = self.worker.outbox.get_nowait()
            except Exception:
                return
            if msg.type in (P.RESULT, P.ERROR, P.CANCELLED):
                targets = self.owners.end(job_id)
            else:
                told = self.owners.told(job_id)
                targets = [told] if told is not None else []
            for identity in targets:
                self._send(identity, msg)

    # -- inbound -------------------------------------------------------------------------
    def _receive(self, frames: list[zmq.Frame]) -> None:
        """One inbound message. Whatever it holds, the peer gets an answer (in time, if it
        is decoding) and this loop goes on."""
        identity = frames[0].bytes
        if self._auth is not None:  # the job owner with CurveZMQ is the key, not the socket
            self._note_key(identity, frames[0])
        body = frames[1:]
        try:
            self._accept(identity, body)
        except DreamwireError as exc:
            job_id, msg_id = P.reply_address(body, self.limits)
            log.warning("bad message from a peer: %s", exc)
            exc.job_id = exc.job_id or job_id
            self._error(identity, exc, msg_id)
        except Exception as exc:  # the last line of defence: one reply, not the server
            log.exception("receiving a message failed")
            job_id, msg_id = P.reply_address(body, self.limits)
            self._error(
                identity,
                DreamwireError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"[:500], job_id),
                msg_id,
            )

    def _accept(self, identity: bytes, frames: list[zmq.Frame]) -> None:
        """Check the envelope here; decode a light message here and a heavy one in the
        decode pool. A client's messages are handled in the order sent (a cancel must not
        overtake its submit), except heartbeats, which hold no state and never wait."""
        env = P.open_envelope(frames, self.limits)
        if env.type not in P.CLIENT_TYPES:
            raise env.error(
                ErrorCode.UNKNOWN_MESSAGE_TYPE, f"a backend does not accept {env.type!r}"
            )
        if env.frames and env.type != P.SUBMIT:
            raise env.error(
                ErrorCode.MALFORMED_MESSAGE, f"a {env.type} message carries no binary frames"
            )
        item = Inbound(identity, env)
        waiting = self._waiting.get(identity)
        if waiting is not None and len(waiting) >= MAX_WAITING_PER_CLIENT:
            raise env.error(
                ErrorCode.QUEUE_FULL, f"{len(waiting)} messages from this client are waiting"
            )
        if item.light:
            item.decode()
            if not waiting or env.type == P.HEARTBEAT:
                self._handle(item)
                return
            waiting.append(item)
            return
        if not self.decoder.admits(item, self.limits.max_message_bytes):
            raise env.error(
                ErrorCode.QUEUE_FULL,
                f"the backend is decoding {self.decoder.in_flight} messages "
                f"({self.decoder.in_flight_bytes} bytes); send again later",
            )
        self._waiting.setdefault(identity, deque()).append(item)
        self.decoder.submit(item)

    def _collect_decoded(self) -> None:
        for item in self.decoder.take_finished():
            waiting = self._waiting.get(item.identity)
            while waiting and waiting[0].ready:
                self._handle(waiting.popleft())
            if not waiting:
                self._waiting.pop(item.identity, None)

    def _handle(self, item: Inbound) -> None:
        """Answer one decoded message (or its decoding error)."""
        identity = item.identity
        if item.error is not None or item.message is None:
            err = item.error or DreamwireError(ErrorCode.INTERNAL, "message was not decoded")
            log.warning("bad message from a peer: %s", err)
            self._error(identity, err, item.envelope.msg_id)
            return
        msg = item.message
        try:
            self._dispatch(identity, msg)
        except DreamwireError as exc:
            exc.job_id = exc.job_id or msg.job_id
            self._error(identity, exc, msg.msg_id)
        except Exception as exc:  # a bug here must cost one reply, not the server
            log.exception("handling %s failed", msg.type)
            self._error(
                identity,
                DreamwireError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", msg.job_id),
                msg.msg_id,
            )

    def _note_key(self, identity: bytes, frame: zmq.Frame) -> None:
        try:
            key = frame.get("User-Id")  # the Z85 key the ZAP handler let in
        except zmq.ZMQError:  # no metadata: the peer is then owned by its routing id
            return
        self.owners.note_key(identity, key if isinstance(key, str) else "")

    def _dispatch(self, identity: bytes, msg: P.Message) -> None:
        t = msg.type
        if t == P.HEARTBEAT:
            running = self.jobs.running
            self._send(
                identity,
                P.reply(
                    msg,
                    P.HEARTBEAT,
                    {
                        "server_id": self.server_id,
                        "queued": len(self.jobs),
                        "running": running.job_id if running is not None else "",
                    },
                ),
            )
        elif t == P.HELLO:
            self._hello(identity, msg)
        elif t == P.SUBMIT:
            self._submit(identity, msg)
        elif t == P.CANCEL:
            self._cancel(identity, msg)
        elif t == P.FETCH_RESULT:
            self._fetch(identity, msg)
        elif t == P.LIST_MODELS:
            self._rescan()
            self._send(identity, P.reply(msg, P.MODELS, self.capabilities))
        else:
            raise DreamwireError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"a backend does not accept {t!r}")

    def _hello(self, identity: bytes, msg: P.Message) -> None:
        theirs = msg.body.get("protocol", P.PROTOCOL_VERSION)
        if theirs != P.PROTOCOL_VERSION:
            raise DreamwireError(
                ErrorCode.PROTOCOL_VERSION,
                f"this backend speaks protocol {P.PROTOCOL_VERSION}, the client {theirs!r}",
            )
        fmt = msg.body.get("image_format", "raw")
        self.formats[identity] = fmt if fmt in P.FORMATS else "raw"
        events = msg.body.get("events")
        if isinstance(events, list) and P.MODELS_CHANGED in events:
            self.model_listeners.add(identity)
        else:  # a client that reconnected as an older one
            self.model_listeners.discard(identity)
        log.info(
            "hello from %s %s",
            str(msg.body.get("client", "?"))[:64],
            str(msg.body.get("client_version", ""))[:32],
        )
        body = {
            "protocol": P.PROTOCOL_VERSION,
            "server_version": SERVER_VERSION,
            "server_id": self.server_id,
            # Queue classes, best first: a client sends "live" only to a backend listing it.
            "priorities": list(PRIORITIES),
            **self.capabilities,
            "limits": self.limits.to_dict(),
            # What runs the jobs: one in-process worker, or the actors of a Ray pool.
            "workers": [w.to_dict() for w in self.worker.workers()],
        }
        self._send(identity, P.reply(msg, P.WELCOME, body))

    def _submit(self, identity: bytes, msg: P.Message) -> None:
        _check_job_id(msg.job_id)
        pending = self._pending.get(msg.job_id)
        if pending is not None:  # a resend while its entry is being written
            pending.also_tell.append((identity, msg))
            return
        if self.jobs.find(msg.job_id) is not None or self._stored(msg.job_id):
            # Submit is idempotent by job id: a client resending after a reconnect gets
            # what a fetch would give, not a second run.
            self._fetch(identity, msg)
            return
        job = P.parse_submit(msg)
        self._check_limits(job)
        self._check_model(job)
        self._check_memory(job)
        # A live job that replaces this client's waiting one takes its place in a full queue.
        replacing = job.priority == LIVE and self._waiting_live(identity)
        if len(self.jobs) + len(self._pending) >= self.limits.max_queue and not replacing:
            raise DreamwireError(
                ErrorCode.QUEUE_FULL,
                f"the queue holds {self.limits.max_queue} jobs; try later",
                job.job_id,
            )
        principal = self.owners.principal(identity)
        if self.durable is not None and job.priority != LIVE:
            # A live frame is stale by the time a restarted backend could run it: not kept.
            if self.writer is not None and _array_bytes(msg) > ASYNC_WRITE_BYTES:
                self._pending[job.job_id] = PendingSubmit(identity, msg, job, principal)
                self.writer.submit(self._pending[job.job_id])
                return  # accepted (or refused) once written: _collect_written
            try:
                self.durable.save(job, principal)
            except OSError as exc:
                # Accepting a job that a crash would lose breaks the promise; refuse instead.
                log.error("job %s: could not write it to the queue folder: %s", job.job_id, exc)
                raise DreamwireError(
                    ErrorCode.INTERNAL, f"the backend could not store the job: {exc}", job.job_id
                ) from None
        self._enqueue(identity, msg, job)

    def _enqueue(self, identity: bytes, msg: P.Message, job: Job) -> None:
        """Queue an accepted job (already on disk when kept there) and say so."""
        if job.priority == LIVE:
            self._supersede_live(identity, job.job_id)
        self.owners.submitted(job.job_id, identity)
        self.jobs.put(job)
        pos = self.jobs.position(job.job_id)
        log.info("job %s: queued (%s priority, position %d)", job.job_id, job.priority, pos)
        self._send(
            identity, P.reply(msg, P.ACCEPTED, {"job_id": job.job_id, "position": max(pos, 0)})
        )

    def _collect_written(self) -> None:
        if self.writer is None:
            return
        for p in self.writer.take_finished():
            self._pending.pop(p.job.job_id, None)
            job_id = p.job.job_id
            if p.error is not None:
                err = DreamwireError(
                    ErrorCode.INTERNAL, f"the backend could not store the job: {p.error}", job_id
                )
                for who, asked in [(p.identity, p.msg), *p.also_tell]:
                    self._error(who, err, asked.msg_id)
                continue
            if p.cancels:  # cancelled while it was being written: never queued
                self._forget_durable(job_id)
                for who, asked in [(p.identity, p.msg), *p.cancels]:
                    self._send(who, P.reply(asked, P.CANCELLED, {"job_id": job_id}))
                log.info("job %s: cancelled while it was being stored", job_id)
                continue
            self._enqueue(p.identity, p.msg, p.job)
            pos = max(self.jobs.position(job_id), 0)
            for who, asked in p.also_tell:
                self._send(who, P.reply(asked, P.ACCEPTED, {"job_id": job_id, "position": pos}))

    def _waiting_live(self, identity: bytes) -> bool:
        previous = self.live.get(identity)
        entry = self.jobs.find(previous) if previous is not None else None
        return entry is not None and all(entry is not r for r in self.jobs.running_entries())

    def _supersede_live(self, identity: bytes, job_id: str) -> None:
        """`job_id` is this client's newest live job: its previous one, if still queued or
        running, is cancelled, so the worker never spends time on a stale frame. Another
        client's live jobs are left alone."""
        previous = self.live.get(identity)
        self.live[identity] = job_id
        if previous is None or previous == job_id:
            return
        reason = f"superseded by the newer live job {job_id} from the same client"
        entry = self.jobs.remove(previous)
        if entry is not None:
            for told in self.owners.end(previous):
                self._send(told, cancelled_message(previous, reason))
            log.info("job %s: cancelled while queued (%s)", previous, reason)
            return
        entry = self.jobs.find(previous)
        if entry is not None:  # running: stops at its next step, then the worker replies
            entry.reason = reason
            entry.cancel.set()

    def _cancel(self, identity: bytes, msg: P.Message) -> None:
        """Every cancel is answered: `cancelled` (at once for a waiting job, from the worker
        at the running job's next step or tile), or `error` `job_not_found` / `not_owner`."""
        job_id = msg.job_id
        pending = self._pending.get(job_id)
        if pending is not None:  # still being written: answered when the write is back
            self.owners.check_principal(job_id, pending.principal, identity)
            pending.cancels.append((identity, msg))
            return
        entry = self.jobs.find(job_id)
        if entry is None:
            raise DreamwireError(
                ErrorCode.JOB_NOT_FOUND, "no such job is queued or running", job_id
            )
        self.owners.check_cancel(job_id, identity)
        # Off the disk first, before any reply and before the engine reaches its next step:
        # a backend killed in between must not bring a cancelled job back.
        self._forget_durable(job_id)
        if self.jobs.remove(job_id) is not None:  # still waiting: gone at once
            cancelled = P.reply(msg, P.CANCELLED, {"job_id": job_id})
            told = self.owners.end(job_id)
            for target in [*told, *([identity] if identity not in told else [])]:
                self._send(target, cancelled)
            log.info("job %s: cancelled while queued", job_id)
            return
        # Running (or taken by the worker just now): it stops at its next step or tile, then
        # the worker's `cancelled` goes to the client told and to every canceller.
        self.owners.wait_for_end(job_id, identity)
        entry.cancel.set()

    def _fetch(self, identity: bytes, msg: P.Message) -> None:
        job_id = msg.job_id
        _check_job_id(job_id)
        # The disk first: the worker saves a result before it posts it and only then leaves
        # the queue, so a job found both ways has finished and its result is what counts.
        pending = self._pending.get(job_id)
        if pending is not None:  # told `accepted` once it is stored
            pending.also_tell.append((identity, msg))
            return
        result = self.load(job_id)
        if result is not None:
            self._send(identity, P.result_message(result, reply_to=msg.msg_id))
            return
        if self.jobs.find(job_id) is not None:
            self.owners.reattach(job_id, identity)  # progress and result now go here
            pos = self.jobs.position(job_id)
            self._send(
                identity,
                P.reply(
                    msg, P.ACCEPTED, {"job_id": job_id, "position": max(pos, 0), "reattached": True}
                ),
            )
            return
        raise DreamwireError(
            ErrorCode.JOB_NOT_FOUND, "no job with this id is queued, running or saved", job_id
        )

    def _stored(self, job_id: str) -> bool:
        """A result, or a final error (`load` raises it), is kept for `job_id`."""
        try:
            return self.load(job_id) is not None
        except DreamwireError:
            return True

    # -- checks --------------------------------------------------------------------------
    def _check_limits(self, job: Job) -> None:
        w = job.width + job.outpaint.left + job.outpaint.right
        h = job.height + job.outpaint.top + job.outpaint.bottom
        if job.hires is not None:
            # The upscale before any crop: that is what the second pass holds in memory.
            plan = job.hires.plan(w, h)
            w, h = plan.upscale_width, plan.upscale_height
        if job.mode is JobMode.UPSCALE:
            w, h = job.upscale.size(job.init_image.shape[1], job.init_image.shape[0])
        if job.mode in (
            JobMode.MATERIALS,
            JobMode.SEGMENT,
            JobMode.PREPROCESS,
        ):  # at the init image's size
            h, w = job.init_image.shape[:2]
        if w * h > self.limits.max_pixels:
            raise DreamwireError(
                ErrorCode.LIMIT_EXCEEDED,
                f"output of {int(w)}x{int(h)} exceeds this backend's limit of {self.limits.max_pixels} pixels",
                job.job_id,
            )
        # An animatediff job's frames are its images (PROTOCOL.md, AnimateDiff jobs).
        images = job.animatediff.frames if job.animatediff is not None else job.batch
        if images > self.limits.max_images:
            raise DreamwireError(
                ErrorCode.LIMIT_EXCEEDED,
                f"{images} images (batch or frames) exceed {self.limits.max_images}",
                job.job_id,
            )

    def _check_memory(self, job: Job) -> None:
        """The job's estimated peak against the memory free now on the worker(s) (the
        worker's engine checks again before it starts the job); refused with
        `limit_exceeded` naming both."""
        admission: MemoryAdmission = self.worker
        admission.check_memory(job)

    def _check_model(self, job: Job) -> None:
        """Refuse names the library does not have now, instead of after queueing."""
        for kind, name, code in (
            ("models", job.model, ErrorCode.MODEL_NOT_FOUND),
            ("vaes", job.vae, ErrorCode.MODEL_NOT_FOUND),
        ):
            known = _names(self.capabilities.get(kind))
            if name and known and stem(name) not in known:
                self._rescan()  # a file may have been added since
                known = _names(self.capabilities.get(kind))
                if stem(name) not in known:
                    listed = ", ".join(sorted(known)[:20])
                    raise DreamwireError(
                        code,
                        f"{kind[:-1]} {name!r} is not in the library; known: {listed}",
                        job.job_id,
                    )

    def _rescan(self) -> None:
        """Read the model folders again, at most once per RESCAN_INTERVAL_S: a scan reads
        every file's header, and a peer asking in a loop must not keep this thread busy."""
        now = time.monotonic()
        if now - self._last_rescan >= RESCAN_INTERVAL_S:
            self._last_rescan = now
            self.engine.rescan_models()
        self._refresh_capabilities()

    def _refresh_capabilities(self) -> None:
        """The lists as the library has them now; a change is pushed to every client that
        asked (`models_changed`)."""
        before = _library_view(self.capabilities)
        self.capabilities = self._capabilities()
        if _library_view(self.capabilities) != before:
            log.info("the model library changed; telling %d client(s)", len(self.model_listeners))
            for identity in list(self.model_listeners):
                self._send(identity, P.Message(P.MODELS_CHANGED, self.capabilities))

    def _capabilities(self) -> dict[str, Any]:
        caps = self.engine.capabilities()
        clean = {k: caps.get(k) for k in CAPABILITY_KEYS}
        clean.update({k: v for k, v in caps.items() if k not in clean})
        # Paths or other objects the engine may list become text; the wire is JSON only.
        return json.loads(json.dumps(clean, default=str))


def _library_view(capabilities: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in capabilities.items() if k not in VOLATILE_KEYS}


def _names(items: Any) -> set[str]:
    """Every name a library entry can be called by (title, file name, stem ...)."""
    out: set[str] = set()
    for item in items or ():
        values = (
            [item] if isinstance(item, str) else (item.values() if isinstance(item, dict) else [])
        )
        for v in values:
            if isinstance(v, str) and v:
                out.add(stem(v))
    return out


def _array_bytes(msg: P.Message) -> int:
    return sum(b.nbytes for b in msg.buffers)


def _check_job_id(job_id: str) -> None:
    if not _JOB_ID.match(job_id or ""):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"bad job id {job_id[:80]!r}")
