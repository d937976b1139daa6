"""Large accepted jobs are written to the queue folder off the server thread
(server/queue_writer.py): heartbeats stay answered during the write, `accepted` comes only
once the job is on disk, and a resend, a fetch or a cancel that arrives meanwhile is
answered when the write is back.

A slow disk is a fault this machine cannot make on demand, so the queue folder's write is
slowed by a sleep (the one thing mocked here); the server, sockets and files are real."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dreamwire.backend.server.durable import DurableQueue
from dreamwire.backend.server.queue_writer import ASYNC_WRITE_BYTES
from dreamwire.backend.server.server import Server, ServerConfig
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from tests.wire.test_wire_hostile import Peer, _header

WRITE_SECONDS = 2.5


class _WaitingEngine:
    """Runs a job until it is cancelled (nothing here needs pixels)."""

    def capabilities(self) -> dict:
        return {"models": ["tiny-sd1"], "device": "cpu"}

    def check_memory(self, job):
        return []

    def run(self, job, on_progress=None, should_cancel=lambda: False):
        while not should_cancel():
            time.sleep(0.02)
        raise DreamwireError(ErrorCode.CANCELLED, "cancelled", job.job_id)


def _big_job() -> Job:
    side = int((ASYNC_WRITE_BYTES // 3) ** 0.5) + 64  # just over the threshold
    return Job(prompt="x", width=64, height=64, init_image=np.zeros((side, side, 3), np.uint8))


def _frames(msg: P.Message) -> list:
    return P.encode(msg)


@pytest.fixture
def server(tmp_path, monkeypatch):
    real_save = DurableQueue.save

    def slow_save(self, job, owner=""):
        time.sleep(WRITE_SECONDS)
        real_save(self, job, owner)

    monkeypatch.setattr(DurableQueue, "save", slow_save)
    config = ServerConfig("tcp://127.0.0.1:0", queue_dir=tmp_path / "queue")
    srv = Server(_WaitingEngine(), lambda job, res: res, lambda job_id: None, config)
    address = srv.bind()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, address, tmp_path / "queue"
    srv.stop()
    thread.join(15)


def test_heartbeats_answered_while_a_large_job_is_written(server):
    srv, address, queue_dir = server
    owner, bystander, stranger = Peer(address), Peer(address), Peer(address)
    try:
        running = _big_job()
        sent = time.monotonic()
        owner.send(_frames(P.submit_message(running)))
        owner.send(_frames(P.Message(P.SUBMIT, *running.to_wire(), job_id=running.job_id)))
        time.sleep(0.5)  # the submit is decoded (raw frames: at once) and being written
        asked = time.monotonic()
        bystander.send([P.TAG, _header("hb", "heartbeat").encode(), b"{}"])
        beat = bystander.answer("hb", 5)
        # Written on the server thread, this heartbeat would wait for the rest of the 2.5 s.
        assert beat is not None and time.monotonic() - asked < 1.0
        accepted = owner.until(lambda m: m.type == P.ACCEPTED, 30)
        assert accepted is not None and time.monotonic() - sent >= WRITE_SECONDS * 0.9
        assert (queue_dir / running.job_id).is_dir()  # on disk before `accepted`
        # The resend (same job id) is answered too, once, without a second entry.
        again = owner.until(lambda m: m.type == P.ACCEPTED, 30)
        assert again is not None and again.job_id == running.job_id

        # Cancelled while its entry is being written: never queued, never run, not on disk.
        doomed = _big_job()
        submit = P.submit_message(doomed)
        owner.send(_frames(submit))
        # Another client's cancel is refused at once (asked again until the submit, decoded
        # on the pool's thread, has reached the server: job_not_found before that).
        deadline = time.monotonic() + WRITE_SECONDS
        while True:
            cancel = P.Message(P.CANCEL, {}, job_id=doomed.job_id)
            stranger.send(_frames(cancel))
            refused = stranger.answer(cancel.msg_id, 5)
            assert refused is not None
            if refused.body["code"] != ErrorCode.JOB_NOT_FOUND.value:
                break
            assert time.monotonic() < deadline, "the submit never reached the server"
            time.sleep(0.05)
        assert refused.body["code"] == ErrorCode.NOT_OWNER.value
        owner.send(_frames(P.Message(P.CANCEL, {}, job_id=doomed.job_id)))
        ends = [owner.until(lambda m: m.job_id == doomed.job_id, 30) for _ in range(2)]
        assert all(m is not None and m.type == P.CANCELLED for m in ends), ends
        assert not (queue_dir / doomed.job_id).exists()
        assert srv.jobs.find(doomed.job_id) is None
    finally:
        owner.send(_frames(P.Message(P.CANCEL, {}, job_id=running.job_id)))
        owner.until(lambda m: m.type == P.CANCELLED and m.job_id == running.job_id, 30)
        for peer in (owner, bystander, stranger):
            peer.close()
