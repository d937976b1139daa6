"""The docker's session logic with the real client against a real backend process."""

from __future__ import annotations

import os
import re
import time

import pytest
from dreamwire_krita.logic import queue
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.probe import ConnectionProbe
from dreamwire_krita.logic.regions import plan_generate
from dreamwire_krita.logic.session import LOST_MESSAGE, Pending, Session, SessionError

from dreamwire.shared.client import Client
from dreamwire.shared.job import Job
from tests.support.backend import BackendProcess


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *a: self.calls.append((name, *a))

    def kinds(self):
        return [c[0] for c in self.calls]


def _pump(session, until, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        session.tick()
        if until():
            return True
        time.sleep(0.02)
    return False


def _pending():
    return Pending("generate", plan_generate(Rect(0, 0, 64, 64), None), Params(), doc_key="doc")


def _pump_probe(probe, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and probe.tick() is None:
        time.sleep(0.02)
    return probe.result


@pytest.fixture
def backend(tmp_path, tiny_models):
    # A quick watch of the model roots, so a changed library is pushed within a second.
    with BackendProcess([tiny_models], tmp_path / "out", extra_args=["--watch-models", "0.5"]) as b:
        yield b


def test_submit_is_refused_until_connected(tmp_path):
    session = Session(Client("tcp://127.0.0.1:9"), Recorder())
    with pytest.raises(SessionError, match="not answering"):
        session.submit(Job(width=64, height=64), _pending())
    session.close()


def test_result_and_a_changed_library_reach_the_listener(backend, tiny_models):
    rec = Recorder()
    session = Session(Client(backend.address), rec)
    assert _pump(session, lambda: session.state == "connected")
    assert "on_welcome" in rec.kinds()
    pending = _pending()
    job_id = session.submit(
        Job(prompt="x", width=64, height=64, steps=2, seed=8, preview_every=1), pending
    )
    assert pending.job_id == job_id and session.busy
    assert _pump(session, lambda: "on_result" in rec.kinds())
    name, got, result = next(c for c in rec.calls if c[0] == "on_result")
    assert got is pending and result.job_id == job_id and result.images[0].seed == 8
    assert "on_progress" in rec.kinds() and not session.busy
    # A checkpoint written into a model folder (as `dreamwire models merge` does): the
    # backend pushes models_changed and the docker's lists are refreshed, nothing asked.
    folder = tiny_models / "models" / "Stable-diffusion"
    added = folder / "session-late.safetensors"
    os.link(folder / "tiny-sd1.safetensors", added)
    before = len(rec.calls)

    def shown() -> bool:  # a call made since (the client updates one Welcome in place)
        later = rec.calls[before:]
        return any(c[0] == "on_welcome" and "session-late" in c[1].models for c in later)

    try:
        assert _pump(session, shown, 30)
    finally:
        added.unlink(missing_ok=True)
    session.close()
    # The settings dialog's Test connection, against the same backend.
    probe = ConnectionProbe(backend.address, "", "", lambda a, s, c: Client(a))
    assert _pump_probe(probe).ok and probe.client is None  # its socket closed again
    found = re.match(r"Connected: the backend answers, with (\d+) model", probe.result.message)
    assert found and int(found[1]) > 0, probe.result.message


def test_cancel_and_backend_loss(backend):
    rec = Recorder()
    session = Session(Client(backend.address), rec)
    assert _pump(session, lambda: session.state == "connected")
    slow = dict(prompt="x", width=64, height=64, steps=400)
    running = _pending()
    session.submit(Job(**slow), running)
    assert _pump(session, lambda: any(c[0] == "on_progress" and c[2].step > 0 for c in rec.calls))
    # A second press queues behind it; the queue says so, and cancelling it leaves the first.
    waiting = _pending()
    session.submit(Job(**slow, seed=5), waiting)
    assert _pump(session, lambda: waiting.stage == "queued")
    assert running.stage == "generating" and waiting.ahead >= 1
    shown = queue.entries(
        queue.QueuedJob(p.job_id, p.action, "x", 5, p.stage, p.ahead)
        for p in session.pending.values()
    )
    assert [e.running for e in shown] == [True, False] and "ahead" in shown[1].text
    session.cancel(waiting.job_id)
    assert _pump(session, lambda: ("on_cancelled", waiting) in rec.calls)
    assert list(session.pending) == [running.job_id]
    session.cancel()
    assert _pump(session, lambda: ("on_cancelled", running) in rec.calls) and not session.busy

    pending = _pending()
    session.submit(Job(**slow), pending)
    assert _pump(
        session,
        lambda: any(c[0] == "on_progress" and c[1] is pending and c[2].step for c in rec.calls),
    )
    backend.kill()
    assert _pump(session, lambda: session.state == "lost", 30)
    assert ("on_error", None, LOST_MESSAGE) in rec.calls
    assert session.busy  # kept: a backend that comes back may still deliver it
    session.cancel()  # nobody to confirm: given up locally
    assert rec.calls[-1] == ("on_cancelled", pending) and not session.busy
    session.close()
