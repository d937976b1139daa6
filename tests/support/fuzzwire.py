"""Messages for fuzzing a real backend over a raw socket: valid ones built the way a client
builds them, mutations that break them at each layer, and a peer that waits for the answer.

Used by tests/wire/test_wire_fuzz_backend.py (hypothesis picks the mutations) and
bench/soak.py (a seeded random.Random picks them). A message is first a `Draft` (header and
body still JSON values, so a mutation can change one field), then frames (so a mutation can
cut, swap or corrupt bytes). Numbers `json.dumps` cannot write (1e999, NaN, a 400-digit
integer) go in as `Raw` and are spliced into the JSON text verbatim.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from dreamwire.shared import codec
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.job import Job

from .wire import small_job

REQUESTS = ("hello", "heartbeat", "list_models", "submit", "cancel", "fetch_result")
IMAGE_FORMATS = ("raw", "png", "zlib")
# What a backend answers each request with when all is well (besides an `error`).
NORMAL_REPLIES = {
    "hello": {P.WELCOME},
    "heartbeat": {P.HEARTBEAT},
    "list_models": {P.MODELS},
    # Submit is idempotent by job id: a job already known is answered as a fetch would be.
    "submit": {P.ACCEPTED, P.RESULT},
    "fetch_result": {P.RESULT, P.ACCEPTED},
    "cancel": {P.CANCELLED},
}
# Errors a valid, unmutated request may still get, by the state the backend is in.
EXPECTED_ERRORS = {
    "submit": {ErrorCode.QUEUE_FULL},
    "fetch_result": {ErrorCode.JOB_NOT_FOUND},
    "cancel": {ErrorCode.JOB_NOT_FOUND},
}
JOB_ENDS = (P.RESULT, P.CANCELLED, P.ERROR)
# Tokens json.dumps will not write, or writes only as a number the decoder refuses.
RAW_NUMBERS = (
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 400,
    "-" + "9" * 21,
    "1e-999",
    "-0",
    "0.0e0",
)


class Raw(str):
    """JSON text to put into a header or body verbatim, e.g. Raw("1e999")."""


def dumps(value: Any) -> bytes:
    """JSON of `value` with every Raw spliced in as written."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(str(v))
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value), separators=(",", ":"))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), raw)
    return text.encode()


@dataclass
class Draft:
    """A message before it becomes frames: what mutations of headers and bodies act on."""

    header: Any  # a dict for a well-formed message
    body: Any
    buffers: list[bytes] = field(default_factory=list)
    tag: bytes = P.TAG

    @property
    def kind(self) -> str:
        t = self.header.get("type") if isinstance(self.header, dict) else None
        return t if isinstance(t, str) else ""

    @property
    def msg_id(self) -> Any:
        return self.header.get("msg_id") if isinstance(self.header, dict) else None

    def frames(self) -> list[bytes]:
        return [self.tag, dumps(self.header), dumps(self.body), *self.buffers]


def init_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def request(
    kind: str, msg_id: str, job_id: str, *, image_format: str = "raw", job: Job | None = None
) -> Draft:
    """A valid request of `kind`, as the shared client would send it. A submit carries `job`
    (default: a tiny txt2img job); its arrays go as `image_format` frames."""
    if kind == P.SUBMIT:
        job = job or small_job(job_id=job_id)
        msg = P.submit_message(job)
    elif kind == P.HELLO:
        body = {
            "protocol": P.PROTOCOL_VERSION,
            "client": "fuzz",
            "client_version": "0",
            "image_format": image_format,
        }
        msg = P.Message(P.HELLO, body)
    else:
        msg = P.Message(kind, job_id=job_id if kind in (P.CANCEL, P.FETCH_RESULT) else "")
    msg.msg_id = msg_id
    frames = [bytes(memoryview(f)) for f in P.encode(msg, image_format)]
    return Draft(json.loads(frames[1]), json.loads(frames[2]), frames[3:])


def tiny_job(job_id: str, steps: int, mode: str, priority: str, seed: int) -> Job:
    """A job that runs in well under a second on the tiny models (64x64, 1-2 steps)."""
    if mode == "txt2img":
        return small_job(job_id=job_id, steps=steps, priority=priority, seed=seed)
    return small_job(
        job_id=job_id,
        steps=steps,
        priority=priority,
        seed=seed,
        init_image=init_image(seed),
        strength=0.75,
    )


# -- structured mutations (on a Draft) -----------------------------------------------------


def set_path(draft: Draft, where: str, path: list[Any], value: Any) -> Draft:
    """`where` ("header" or "body") with the value at `path` (keys and list indexes; a
    missing step is created, an index past the end wraps) set to `value`."""
    out = copy.deepcopy(draft)
    node = getattr(out, where)
    if not path:
        setattr(out, where, value)
        return out
    for step in path[:-1]:
        node = _step(node, step)
        if node is None:
            return out
    _assign(node, path[-1], value)
    return out


def delete_path(draft: Draft, where: str, path: list[Any]) -> Draft:
    out = copy.deepcopy(draft)
    node = getattr(out, where)
    for step in path[:-1]:
        node = _step(node, step)
        if node is None:
            return out
    if isinstance(node, dict):
        node.pop(path[-1], None)
    elif isinstance(node, list) and node:
        node.pop(path[-1] % len(node) if isinstance(path[-1], int) else 0)
    return out


def _step(node: Any, step: Any) -> Any:
    if isinstance(node, dict):
        return node.setdefault(step, {})
    if isinstance(node, list) and node and isinstance(step, int):
        return node[step % len(node)]
    return None


def _assign(node: Any, key: Any, value: Any) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and node and isinstance(key, int):
        node[key % len(node)] = value


# -- frame mutations (on the frames as sent) -----------------------------------------------


def truncate(frames: list[bytes], i: int, keep: int) -> list[bytes]:
    out = list(frames)
    i %= len(out)
    out[i] = out[i][: keep % (len(out[i]) + 1)]
    return out


def extend(frames: list[bytes], i: int, extra: bytes) -> list[bytes]:
    out = list(frames)
    i %= len(out)
    out[i] = out[i] + extra
    return out


def flip(frames: list[bytes], i: int, pos: int, byte: int) -> list[bytes]:
    out = list(frames)
    i %= len(out)
    if out[i]:
        b = bytearray(out[i])
        b[pos % len(b)] ^= byte or 0xFF
        out[i] = bytes(b)
    return out


def replace(frames: list[bytes], i: int, data: bytes) -> list[bytes]:
    out = list(frames)
    out[i % len(out)] = data
    return out


def swap(frames: list[bytes], i: int, j: int) -> list[bytes]:
    out = list(frames)
    i, j = i % len(out), j % len(out)
    out[i], out[j] = out[j], out[i]
    return out


def drop(frames: list[bytes], i: int) -> list[bytes]:
    out = list(frames)
    del out[i % len(out)]
    return out or [b""]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with a correct CRC, so the decoder looks past it at what it says."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def lying_png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A PNG whose chunks are well formed and whose IHDR and image data say anything."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        codec.PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def header_as_sent(frames: list[bytes]) -> dict:
    """The header frame read leniently (1e999, NaN, long integers accepted), or {} where it
    is past the header limit or not a JSON object: what an error reply can be addressed by."""
    if len(frames) < 2 or len(frames[1]) > P.Limits().max_header_bytes:
        return {}
    try:
        head = json.loads(frames[1])
    except ValueError:
        return {}
    return head if isinstance(head, dict) else {}


def reply_to_expected(head: dict) -> str | None:
    """The msg id an answer must name: the header's, where it is one a header may carry (a
    string of at most 256 characters); None where it is not (any answer will do)."""
    msg_id = head.get("msg_id")
    return msg_id if isinstance(msg_id, str) and len(msg_id) <= 256 else None


# -- a raw peer ----------------------------------------------------------------------------


class Peer:
    """A DEALER sending raw frames; `answer` returns the first message a predicate takes and
    keeps the others (job events) in `seen`."""

    def __init__(self, address: str, identity: bytes | None = None):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        if identity is not None:
            self.sock.identity = identity
        self.sock.connect(address)
        self.seen: list[P.Message] = []

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def answer(self, wanted: Callable[[P.Message], bool], timeout: float) -> P.Message | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1):
                continue
            msg = P.decode(self.sock.recv_multipart(), P.Limits())
            if wanted(msg):
                return msg
            self.seen.append(msg)
        return None

    def first(self, timeout: float) -> P.Message | None:
        return self.answer(lambda m: True, timeout)

    def heartbeat(self, msg_id: str, timeout: float = 5.0) -> float:
        """Seconds until this peer's heartbeat is answered (inf past `timeout`)."""
        start = time.monotonic()
        self.send(request(P.HEARTBEAT, msg_id, "").frames())
        got = self.answer(lambda m: m.reply_to == msg_id and m.type == P.HEARTBEAT, timeout)
        return time.monotonic() - start if got is not None else float("inf")

    def close(self) -> None:
        self.sock.close(0)


def answers_request(sent: Draft) -> Callable[[P.Message], bool]:
    """What counts as the answer to `sent` on its own socket: the reply naming its msg id,
    or, for a cancel of a running job, that job's end (the worker sends it, unnamed)."""
    msg_id, job_id = sent.msg_id, sent.header.get("job_id")

    def wanted(msg: P.Message) -> bool:
        if msg.reply_to == msg_id:
            return True
        return (
            sent.kind == P.CANCEL
            and msg.reply_to == ""  # not a late reply to an earlier request about the job
            and msg.job_id == job_id
            and msg.type in JOB_ENDS
        )

    return wanted


def process_usage(pid: int) -> tuple[int, int]:
    """(resident set in KiB, open file descriptors) of a process, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def problem(
    sent: Draft, expect_reply_to: str | None, pristine: bool, answer: P.Message | None
) -> str:
    """What is wrong with `answer` as the backend's answer to `sent` ("" if nothing).

    `expect_reply_to` is the msg id the answer must name (None: the header was mangled past
    reading); `pristine` says `sent` is a valid request, which must get its normal answer
    or one of the errors the backend's state explains (a full queue, an unknown job)."""
    if answer is None:
        return "no answer"
    kind = sent.kind
    job_end = kind == P.CANCEL and answer.reply_to == "" and answer.type in JOB_ENDS
    if expect_reply_to is not None and answer.reply_to != expect_reply_to and not job_end:
        return f"{answer.type} names reply_to {answer.reply_to!r}, not {expect_reply_to!r}"
    if answer.type == P.ERROR:
        try:
            code = ErrorCode(answer.body.get("code"))
        except ValueError:
            return f"error with an unknown code: {answer.body}"
        if code is ErrorCode.INTERNAL:
            return f"internal error: {answer.body.get('message')}"
        if not answer.body.get("message"):
            return f"error {code.value} says nothing"
        if pristine and not job_end and code not in EXPECTED_ERRORS.get(kind, ()):
            return f"a valid {kind} refused: {answer.body}"
        return ""
    allowed = NORMAL_REPLIES.get(kind, set()) | ({P.RESULT} if job_end else set())
    if answer.type not in allowed:
        return f"{answer.type} in answer to a {kind or 'mangled'} message"
    return ""
