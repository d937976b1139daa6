"""A real backend against messages built to kill or stall it (issue 22, points 1 and 2).

Every such message gets an error reply naming its msg id, with a stable code, and the server
goes on; while one client's large, legal but expensive message is being decoded, another
client's heartbeats are answered within a second.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib

import numpy as np
import zmq

from dreamwire.backend.server.server import Server, ServerConfig
from dreamwire.shared import codec
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import ErrorCode
from tests.support.wire import small_job


class Peer:
    """A DEALER that sends raw frames and reads the answer to a given msg id."""

    def __init__(self, address: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def answer(self, msg_id: str, timeout: float = 30.0) -> P.Message | None:
        return self.until(lambda msg: msg.reply_to == msg_id, timeout)

    def until(self, wanted, timeout: float = 30.0) -> P.Message | None:
        """The first message `wanted(msg)` accepts (others are dropped), or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.sock.poll(int(left * 1000) + 1):
                msg = P.decode(self.sock.recv_multipart(), P.Limits())
                if wanted(msg):
                    return msg
        return None

    def close(self) -> None:
        self.sock.close(0)


def _header(msg_id: str, type: str = "hello", **kw) -> str:
    return json.dumps({"msg_id": msg_id, "type": type, "job_id": "", "buffers": [], **kw})


def _killers() -> dict[str, tuple[list[bytes], ErrorCode]]:
    """Messages that stopped a backend, or slipped past its checks, before issue 22."""
    big = "1" + "0" * 400
    one_byte = {"dtype": "uint8", "format": "raw", "shape": [1], "nbytes": 1}

    def buffer(msg_id: str, shape: str, nbytes: str, frame: bytes = b"") -> list[bytes]:
        spec = f'{{"dtype": "uint8", "format": "raw", "shape": {shape}, "nbytes": {nbytes}}}'
        head = f'{{"msg_id": "{msg_id}", "type": "submit", "job_id": "j1", "buffers": [{spec}]}}'
        return [P.TAG, head.encode(), b"{}", frame]

    def header(msg_id: str, text: str) -> list[bytes]:
        return [P.TAG, ('{"msg_id": "' + msg_id + '", "type": "hello", ' + text).encode(), b"{}"]

    def body(msg_id: str, text: str, type: str = "hello") -> list[bytes]:
        return [P.TAG, _header(msg_id, type, job_id="j2").encode(), text.encode()]

    cases = {
        "zero-byte absurd dims": (buffer("k1", "[0, 1000000000000]", "0"), "malformed_message"),
        "zero-byte 2**62 x 0": (buffer("k2", f"[{2**62}, 0]", "0"), "malformed_message"),
        "huge int dim": (buffer("k3", f"[{big}, 1]", "1", b"x"), "malformed_message"),
        "huge int nbytes": (buffer("k4", "[1]", big, b"x"), "malformed_message"),
        "dims past the limit": (buffer("k5", f"[{2**40}, 1]", "1", b"x"), "limit_exceeded"),
        "huge int sent": (header("k6", f'"sent": {big}}}'), "malformed_message"),
        "1e999 sent": (header("k7", '"sent": 1e999}'), "malformed_message"),
        "NaN sent": (header("k8", '"sent": NaN}'), "malformed_message"),
        "1e999 in hello": (body("k9", '{"protocol": 1e999}'), "malformed_message"),
        "NaN in hello": (body("k10", '{"client": NaN}'), "malformed_message"),
        "huge int in a submit": (body("k11", f'{{"seed": {big}}}', "submit"), "malformed_message"),
        "-1e999 in a cancel": (body("k12", '{"x": -1e999}', "cancel"), "malformed_message"),
        "frames on a heartbeat": (
            [P.TAG, _header("k13", "heartbeat", buffers=[one_byte]).encode(), b"{}", b"x"],
            "malformed_message",
        ),
    }
    return {name: (frames, ErrorCode(code)) for name, (frames, code) in cases.items()}


def test_killer_messages_get_error_replies_and_the_server_answers_on(backend):
    peer = Peer(backend.address)
    try:
        cases = _killers()
        for frames, _ in cases.values():  # all at once: none may stop the ones after it
            peer.send(frames)
        for name, (frames, code) in cases.items():
            answer = peer.answer(_msg_id(frames[1]))
            assert answer is not None, f"{name}: no answer"
            assert answer.type == P.ERROR, (name, answer.type)
            assert answer.body["code"] == code.value, (name, answer.body)
            assert answer.body["message"], name
        peer.send([P.TAG, _header("hb", "heartbeat").encode(), b"{}"])
        beat = peer.answer("hb")
        assert beat is not None and beat.type == P.HEARTBEAT and beat.body["server_id"]
        peer.send([P.TAG, _header("hi").encode(), b'{"protocol": 1}'])
        welcome = peer.answer("hi")
        assert welcome is not None and welcome.type == P.WELCOME
    finally:
        peer.close()
    assert backend.alive


def _msg_id(header: bytes) -> str:
    """The msg id of a header json.loads may refuse (that is the point of these headers)."""
    text = header.decode()
    start = text.index('"msg_id": "') + len('"msg_id": "')
    return text[start : text.index('"', start)]


# -- nothing blocks the I/O thread ---------------------------------------------------------


def _paeth_png(side: int, depth: int = 8) -> bytes:
    """A legal grey PNG of `side` x `side` whose every row uses the Paeth filter: small on
    the wire, and the filter a byte-by-byte decoder spends ~1 us per byte on."""
    stride = side * depth // 8
    rows = np.zeros((side, stride + 1), np.uint8)
    rows[:, 0] = 4
    rows[::3, 1::11] = 7  # some content, so the decoded image is not just zeros
    ihdr = struct.pack(">IIBBBBB", side, side, depth, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    idat = zlib.compress(rows.tobytes(), 9)
    return codec.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _expensive_submit(msg_id: str, job_id: str, frame: bytes, shape, dtype: str, fmt: str):
    """A submit carrying one large compressed frame and an invalid body: the backend must
    decode the frame before it can tell (invalid_job), and no job runs afterwards."""
    spec = {"dtype": dtype, "shape": list(shape), "nbytes": len(frame), "format": fmt}
    header = _header(msg_id, "submit", job_id=job_id, buffers=[spec])
    body = json.dumps({"job_id": job_id, "cfg": "seven", "init_image": {"$array": 0}})
    return [P.TAG, header.encode(), body.encode(), frame]


def test_heartbeats_are_answered_while_an_expensive_message_decodes(backend):
    # The shared backend takes 16 MiB messages: each frame here decodes to 16 MiB. A
    # byte-by-byte decoder took ~15 s for the 4096^2 Paeth PNG alone, in the server thread.
    side16 = int((16 * 2**20 // 2) ** 0.5)  # 16-bit grey goes to the numpy decoder
    frames = [
        (_paeth_png(4096), (4096, 4096), "uint8", "png"),
        (_paeth_png(side16, 16), (side16, side16), "uint16", "png"),
        (zlib.compress(bytes(16 * 2**20), 9), (2048, 2048), "float32", "zlib"),
    ]
    heavy = {
        f"h{i}-{n}": _expensive_submit(f"h{i}-{n}", f"hostile{i}-{n}", *frame)
        for n in range(2)
        for i, frame in enumerate(frames)
    }
    attacker = Peer(backend.address)
    bystander = Peer(backend.address)
    delays: list[float] = []
    stop = threading.Event()

    def beat() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            start = time.monotonic()
            bystander.send([P.TAG, _header(f"b{n}", "heartbeat").encode(), b"{}"])
            answer = bystander.answer(f"b{n}", timeout=20)
            delays.append(time.monotonic() - start if answer is not None else float("inf"))
            time.sleep(0.05)

    try:
        for message in heavy.values():
            assert sum(map(len, message)) < 400_000  # small on the wire
        beats = threading.Thread(target=beat)
        beats.start()
        try:
            time.sleep(0.3)
            for message in heavy.values():
                attacker.send(message)
            answers = {}
            for msg_id in heavy:  # a client's answers come in the order it asked
                answers[msg_id] = attacker.answer(msg_id, timeout=120)
                assert answers[msg_id] is not None, msg_id
            time.sleep(0.3)
        finally:
            stop.set()
            beats.join(30)
    finally:
        attacker.close()
        bystander.close()
    for answer in answers.values():
        # Decoded in full, then refused for the body: a clear error with a stable code.
        assert answer.type == P.ERROR and answer.body["code"] == "invalid_job", answer.body
    assert len(delays) >= 5, delays
    assert max(delays) <= 1.0, delays
    assert backend.alive


def test_a_clients_messages_keep_their_order_behind_a_decode(backend):
    """A cancel sent right after a submit with an image must find that job, although the
    submit's image is decoded on another thread and the cancel needs no decoding."""
    job = small_job(init_image=np.full((64, 64, 3), 99, np.uint8), steps=400)
    frames = [bytes(memoryview(f)) for f in P.encode(P.submit_message(job), "png")]
    submit_id = _msg_id_of(frames[1])
    cancel = P.Message(P.CANCEL, job_id=job.job_id)
    peer = Peer(backend.address)
    try:
        peer.send(frames)
        peer.send([bytes(memoryview(f)) for f in P.encode(cancel)])
        accepted = peer.answer(submit_id)
        assert accepted is not None and accepted.type == P.ACCEPTED, accepted
        # Cancelled while queued (a reply to the cancel) or at its next step (from the worker).
        answer = peer.until(
            lambda m: m.job_id == job.job_id and m.type in (P.CANCELLED, P.ERROR, P.RESULT), 60
        )
        assert answer is not None and answer.type == P.CANCELLED, answer and answer.body
    finally:
        peer.close()


def _msg_id_of(header: bytes) -> str:
    return json.loads(header)["msg_id"]


# -- the last line of defence --------------------------------------------------------------


class _IdleEngine:
    """The server asks an engine only for its capabilities until a job runs; none runs here."""

    def capabilities(self) -> dict:
        return {"models": ["tiny-sd1"], "device": "cpu"}


def test_an_unexpected_failure_costs_one_internal_reply_not_the_server(monkeypatch, caplog):
    # Faults no message can cause any more, injected: the output folder failing under a
    # fetch, and the envelope check itself failing once.
    def load(job_id: str):
        if job_id == "boom":
            raise RuntimeError("the output folder went away")
        return None

    server = Server(_IdleEngine(), lambda job, res: res, load, ServerConfig("tcp://127.0.0.1:0"))
    address = server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    real_open = P.open_envelope

    def open_broken_for_x1(frames, limits):
        if len(frames) > 2 and bytes(memoryview(frames[2])) == b'{"break": 1}':
            raise ZeroDivisionError("a bug in the envelope check")
        return real_open(frames, limits)

    peer = Peer(address)
    try:
        peer.send([P.TAG, _header("f1", "fetch_result", job_id="boom").encode(), b"{}"])
        answer = peer.answer("f1")
        assert answer is not None and answer.body["code"] == "internal", answer
        assert answer.job_id == "boom" and "RuntimeError" in answer.body["message"]
        monkeypatch.setattr(P, "open_envelope", open_broken_for_x1)
        peer.send([P.TAG, _header("hb1", "heartbeat").encode(), b"{}"])
        peer.send([P.TAG, _header("x1", "list_models", job_id="j9").encode(), b'{"break": 1}'])
        answer = peer.answer("x1")
        assert answer is not None and answer.body["code"] == "internal", answer
        assert answer.job_id == "j9"
        peer.send([P.TAG, _header("hb2", "heartbeat").encode(), b"{}"])
        beat = peer.answer("hb2")
        assert beat is not None and beat.type == P.HEARTBEAT
    finally:
        peer.close()
        server.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
