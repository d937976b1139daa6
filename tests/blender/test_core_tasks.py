"""The action driver (core.tasks) against a real backend process and a real Client."""

from __future__ import annotations

import socket
import time

import pytest

from blender_addon.core.tasks import CANCELLED, FAILED, FINISHED, ActionError, Driver
from dreamwire.shared.client import Client
from dreamwire.shared.job import Job
from tests.support.backend import BackendProcess


def small_job(**kw) -> Job:
    base = dict(
        prompt="brick", width=64, height=64, steps=2, sampler="Euler a", seed=7, preview_every=1
    )
    base.update(kw)
    return Job(**base)


@pytest.fixture
def backend(blender_backend):
    return blender_backend


@pytest.fixture
def client(backend):
    c = Client(backend.address)
    yield c
    c.close()


def drive(driver: Driver, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not driver.done and time.monotonic() < deadline:
        driver.tick()
        time.sleep(0.01)
    assert driver.done


def test_an_action_gets_each_result_back_in_order(client):
    log = []

    def action():
        first = yield small_job(seed=1, tag="one")
        log.append((first.tag, first.images[0].seed, first.images[0].image.shape))
        second = yield small_job(seed=2, tag="two")
        log.append((second.tag, second.images[0].seed))
        return "two images"

    previews = []
    d = Driver(client, action(), connect_timeout=60, jobs_expected=2, on_preview=previews.append)
    drive(d)
    assert d.status.state == FINISHED and d.status.message == "two images"
    assert log == [("one", 1, (64, 64, 3)), ("two", 2)]
    assert d.status.fraction == 1.0 and d.jobs_done == 2
    assert previews and previews[0].ndim == 3


def test_cancel_closes_the_action_so_its_cleanup_runs(client):
    cleaned = []

    def action():
        try:
            yield small_job(steps=200, width=128, height=128)
        finally:
            cleaned.append(True)

    d = Driver(client, action(), connect_timeout=60)
    while d.job_id is None and not d.done:
        d.tick()
        time.sleep(0.01)
    d.cancel()
    assert d.status.state == CANCELLED and cleaned == [True]


def test_backend_errors_reach_the_action_and_end_as_a_message(client):
    seen = []

    def action():
        try:
            yield small_job(model="no-such-model")
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise

    d = Driver(client, action(), connect_timeout=60)
    drive(d)
    assert d.status.state == FAILED and "no-such-model" in d.status.message
    assert seen == ["DreamwireError"]


def test_action_errors_are_reported_without_traceback(client):
    def action():
        yield small_job()
        raise ActionError("Select the mesh objects to project onto.")

    d = Driver(client, action(), connect_timeout=60)
    drive(d)
    assert d.status.state == FAILED
    assert d.status.message == "Select the mesh objects to project onto."


def test_a_missing_backend_fails_before_the_action_starts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    started = []

    def action():
        started.append(True)
        yield small_job()

    c = Client(address)
    try:
        d = Driver(c, action(), connect_timeout=1.0)
        drive(d, timeout=30)
    finally:
        c.close()
    assert d.status.state == FAILED and "No Dreamwire backend answers" in d.status.message
    assert started == []


def test_a_backend_killed_mid_job_fails_the_action(tiny_models, tmp_path):
    cleaned = []

    def action():
        try:
            yield small_job(steps=300, width=128, height=128)
        finally:
            cleaned.append(True)

    with BackendProcess([tiny_models], tmp_path / "dies") as proc:
        c = Client(proc.address)
        try:
            d = Driver(c, action(), connect_timeout=60, lost_timeout=2.0)
            while (d.job_id is None or d.status.text == "Submitted") and not d.done:
                d.tick()
                time.sleep(0.01)
            proc.kill()
            drive(d, timeout=60)
        finally:
            c.close()
    assert d.status.state == FAILED and "stopped answering" in d.status.message
    assert cleaned == [True]


def test_precheck_stops_an_action_the_backend_cannot_serve(client):
    from blender_addon.core.job_builder import (
        ControlSetting,
        GenerationSettings,
        missing_on_backend,
    )

    started = []

    def action():
        started.append(True)
        yield small_job()

    s = GenerationSettings(model="tiny-sd1", controls=[ControlSetting("depth", True)])
    d = Driver(client, action(), connect_timeout=60, precheck=lambda w: missing_on_backend(s, w))
    drive(d)
    assert d.status.state == FINISHED and started == [True]  # the real backend has both
    s = GenerationSettings(model="sd-nope", controls=[ControlSetting("depth", True)])
    started.clear()
    d = Driver(client, action(), connect_timeout=60, precheck=lambda w: missing_on_backend(s, w))
    drive(d)
    assert d.status.state == FAILED and "no model named 'sd-nope'" in d.status.message
    assert started == []


def test_an_action_yields_independent_pieces_and_gets_them_back_in_order(client):
    from dreamwire.shared.fanout import FanOut

    saved, cleaned = [], []

    def action():
        fan = yield FanOut(
            ["a", "b", "c"],
            lambda k: small_job(seed=ord(k), tag=k),
            2,
            on_result=lambda k, r: saved.append((k, r.tag, r.images[0].seed)),
        )
        return f"{len(fan.delivered)} pieces"

    d = Driver(client, action(), connect_timeout=60, jobs_expected=3)
    drive(d)
    assert d.status.state == FINISHED and d.status.message == "3 pieces"
    assert saved == [("a", "a", 97), ("b", "b", 98), ("c", "c", 99)]
    assert d.jobs_done == 3 and d.status.fraction == 1.0

    # Cancelled while two are in flight: both are cancelled on the backend, the third
    # never sent, and the action's cleanup runs.
    def long():
        try:
            yield FanOut(
                [1, 2, 3], lambda k: small_job(seed=k, steps=300, width=128, height=128), 2
            )
        finally:
            cleaned.append(True)

    d = Driver(client, long(), connect_timeout=60, jobs_expected=3)
    while (d.fan is None or len(d.fan.in_flight) < 2) and not d.done:
        d.tick()
        time.sleep(0.01)
    fan = d.fan
    d.cancel()
    assert d.status.state == CANCELLED and cleaned == [True]
    assert len(fan.sent) == 2 and fan.in_flight == []
    gone = set()
    deadline = time.monotonic() + 60
    while gone != set(fan.sent) and time.monotonic() < deadline:
        gone |= {e.job_id for e in client.wait(1.0) if type(e).__name__ == "Cancelled"}
    assert gone == set(fan.sent)


def test_a_piece_that_cannot_be_made_fails_the_action_with_its_message(client):
    from dreamwire.shared.fanout import FanOut

    def make(k):
        if k == 2:
            raise ActionError("The camera was deleted.")
        return small_job(seed=k)

    def action():
        yield FanOut([1, 2], make, 1)

    d = Driver(client, action(), connect_timeout=60)
    drive(d)
    assert d.status.state == FAILED and d.status.message == "The camera was deleted."
