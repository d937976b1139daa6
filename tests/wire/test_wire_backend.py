"""A real backend process driven over real sockets: jobs, clients, cancel, priorities, bad peers.

One backend (tiny models) serves the whole module; tests that kill or freeze a backend live
in test_recovery.py with their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zmq
from PIL import Image

from dreamwire.shared import events as ev
from dreamwire.shared import protocol as P
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import HiresFix
from tests.support.wire import LONG_STEPS, collect, ended, first_step, small_job


def test_welcome_describes_the_backend(client):
    w = client.welcome
    assert w.protocol == P.PROTOCOL_VERSION and w.server_id
    assert "tiny-sd1" in w.models
    assert "Euler" in w.samplers and "DPM++ 2M Karras" in w.samplers
    assert w.limits["max_message_bytes"] == 16 * 2**20 and w.limits["max_queue"] == 8
    assert w.device
    (worker,) = w.workers  # the in-process one, with what is free for its next job
    assert worker.name == "local" and worker.device == "cpu" and worker.vram_free is None
    assert worker.ram_free is not None and worker.ram_free > 2**20


def test_welcome_says_which_family_each_lora_fits(client):
    # Read from the tiny LoRA files' headers: kohya SD1 (lora_te_), diffusers/PEFT SD1, a
    # LoHa (its w1_b's cross-attention width) and kohya SDXL (lora_te1_/te2_).
    fams = client.welcome.lora_families
    assert set(fams) <= set(client.welcome.loras)
    for name in ("tiny_style", "tiny_peft", "tiny_loha", "lcm-lora-sdv1-5"):
        assert fams[name] == ["sd1"], (name, fams)
    assert fams["tiny_xl_style"] == ["sdxl"]
    # Refused kinds say nothing (LoKr's keys tell no width; a hypernetwork is a pickle).
    assert "tiny_lokr" not in fams and "tiny_hypernet" not in fams


def test_submit_progress_result_saved_before_sent(client, backend):
    steps: list[int] = []
    states: list[str] = []
    previews: list[np.ndarray] = []

    def on_progress(p):
        states.append(p.state)
        steps.append(p.step)
        if p.preview is not None:
            previews.append(p.preview)

    job = small_job(steps=3, tag="frame 1", preview_every=1)
    result = client.run(job, timeout=120, on_progress=on_progress)
    assert previews and all(
        p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in previews
    )
    assert result.job_id == job.job_id and result.tag == "frame 1"
    (img,) = result.images
    assert img.image.shape == (64, 64, 3) and img.image.dtype == np.uint8
    assert img.seed == 7 and "Steps: 3" in img.infotext
    assert "generating" in states and 3 in steps
    # On disk, identical to what came over the wire, with the infotext in the PNG.
    path = Path(img.path)
    assert path.is_file() and path.is_relative_to(backend.out_dir)
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), img.image)
        assert png.info["parameters"] == img.infotext
    record = json.loads((path.parent / "result.json").read_text())
    assert record["job_id"] == job.job_id

    # Any client can fetch it again by id, from disk.
    other = Client(backend.address)
    try:
        other.fetch_result(job.job_id)
        (fetched,) = [e for e in collect(other, ended(job.job_id)) if isinstance(e, ev.ResultEvent)]
        np.testing.assert_array_equal(fetched.result.images[0].image, img.image)
        assert fetched.result.images[0].seed == 7
        other.fetch_result("0123456789abcdef")
        (err,) = [
            e for e in collect(other, ended("0123456789abcdef")) if isinstance(e, ev.ErrorEvent)
        ]
        assert err.error.code == ErrorCode.JOB_NOT_FOUND
    finally:
        other.close()


def test_two_clients_at_once_each_hear_only_their_own_job(backend):
    a, b = Client(backend.address), Client(backend.address)
    try:
        ja = a.submit(small_job(seed=1, steps=3))
        jb = b.submit(small_job(seed=2, steps=3))
        ea = collect(a, ended(ja))
        eb = collect(b, ended(jb))
        for events, mine in ((ea, ja), (eb, jb)):
            job_events = [e for e in events if hasattr(e, "job_id")]
            assert job_events and all(e.job_id == mine for e in job_events)
            assert any(isinstance(e, ev.ProgressEvent) for e in job_events)
        ra = next(e for e in ea if isinstance(e, ev.ResultEvent)).result
        rb = next(e for e in eb if isinstance(e, ev.ResultEvent)).result
        assert (ra.images[0].seed, rb.images[0].seed) == (1, 2)
        assert not np.array_equal(ra.images[0].image, rb.images[0].image)
    finally:
        a.close()
        b.close()


def test_cancel_mid_job_then_next_job_runs(client, backend):
    job_id = client.submit(small_job(steps=LONG_STEPS))
    seen = collect(client, first_step(job_id))
    client.cancel(job_id)
    seen += collect(client, ended(job_id))
    assert any(isinstance(e, ev.Cancelled) and e.job_id == job_id for e in seen)
    assert not any(isinstance(e, ev.ResultEvent) for e in seen)
    last = max(e.progress.step for e in seen if isinstance(e, ev.ProgressEvent))
    assert last < LONG_STEPS
    assert not (backend.out_dir / "jobs" / job_id / "result.json").exists()
    assert client.run(small_job(), timeout=120).images


def test_priorities_interactive_before_normal_before_batch(client):
    blocker = client.submit(small_job(steps=LONG_STEPS))
    collect(client, first_step(blocker))
    order = ["batch", "normal", "interactive", "batch"]
    ids = [client.submit(small_job(priority=p)) for p in order]
    accepted = collect(
        client, lambda es: sum(isinstance(e, ev.Accepted) and e.job_id in ids for e in es) == 4
    )
    positions = {e.job_id: e.position for e in accepted if isinstance(e, ev.Accepted)}
    # Each arrival's place: behind the running blocker and whatever outranks it.
    assert [positions[i] for i in ids] == [1, 1, 1, 4]
    client.cancel(blocker)
    done: list[str] = []
    events = collect(client, lambda es: len([e for e in es if isinstance(e, ev.ResultEvent)]) == 4)
    done = [e.job_id for e in events if isinstance(e, ev.ResultEvent)]
    assert done == [ids[2], ids[1], ids[0], ids[3]]


def test_full_queue_refuses_and_recovers(client):
    blocker = client.submit(small_job(steps=LONG_STEPS))
    collect(client, first_step(blocker))
    queued = [client.submit(small_job(priority="batch")) for _ in range(8)]
    extra = client.submit(small_job())
    events = collect(client, ended(extra))
    (err,) = [e for e in events if isinstance(e, ev.ErrorEvent)]
    assert err.error.code == ErrorCode.QUEUE_FULL
    assert sum(isinstance(e, ev.Accepted) and e.job_id in queued for e in events) == 8
    for job_id in [*queued, blocker]:
        client.cancel(job_id)
    cancelled = collect(client, lambda es: sum(isinstance(e, ev.Cancelled) for e in es) == 9)
    assert {e.job_id for e in cancelled if isinstance(e, ev.Cancelled)} == {*queued, blocker}
    assert client.run(small_job(), timeout=120).images


def test_model_switch_is_a_progress_state_and_stays_cached(client):
    def states(model: str) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        client.run(
            small_job(model=model),
            timeout=120,
            on_progress=lambda p: seen.append((p.state, p.message)),
        )
        return seen

    first = states("tiny-sd1-diffusers")
    assert any(s == "loading_model" and "tiny-sd1-diffusers" in m for s, m in first), first
    assert not any(s == "loading_model" for s, _ in states("tiny-sd1-diffusers"))


def test_unknown_model_and_sampler_are_error_replies(client):
    with pytest.raises(DreamwireError) as info:
        client.run(small_job(model="no-such-model"), timeout=60)
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "no-such-model" in info.value.message
    with pytest.raises(DreamwireError) as info:
        client.run(small_job(sampler="Magic Sampler"), timeout=60)
    assert info.value.code == ErrorCode.UNKNOWN_SAMPLER


# -- bad peers -----------------------------------------------------------------------------


class RawPeer:
    """A DEALER that sends whatever frames a test gives it."""

    def __init__(self, address: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def ask(self, frames: list[bytes], timeout_ms: int = 20000) -> P.Message | None:
        self.sock.send_multipart(frames)
        if not self.sock.poll(timeout_ms):
            return None
        return P.decode(self.sock.recv_multipart(), P.Limits())

    def close(self) -> None:
        self.sock.close(0)


def _header(**kw) -> bytes:
    h = {"msg_id": "m1", "type": "hello", "job_id": "", "reply_to": "", "buffers": [], **kw}
    return json.dumps(h).encode()


def _raw(msg: P.Message) -> list[bytes]:
    return [bytes(memoryview(f)) for f in P.encode(msg)]


def _assert_good_client_served(address: str) -> None:
    c = Client(address)
    try:
        assert c.connect_wait(30).protocol == P.PROTOCOL_VERSION
        c.list_models()
        models = [e for e in collect(c, lambda es: any(isinstance(e, ev.ModelsEvent) for e in es))]
        assert (
            "tiny-sd1"
            in next(e for e in models if isinstance(e, ev.ModelsEvent)).capabilities["models"]
        )
    finally:
        c.close()


def test_bad_peers_get_error_replies_and_the_server_stays_up(backend):
    img = np.zeros((64, 64, 3), np.uint8)
    good_submit = _raw(P.submit_message(small_job(init_image=img)))
    huge = json.loads(good_submit[1])
    huge["buffers"][0]["shape"] = [100_000, 100_000, 3]
    huge["buffers"][0]["format"] = "png"
    mismatch = json.loads(good_submit[1])
    mismatch["buffers"][0]["shape"] = [64, 65, 3]
    # Valid as a job (8192 is Job's largest side), but 16384^2 after Hires.fix is over the limit.
    too_big = _raw(P.submit_message(small_job(width=8192, height=8192, hires=HiresFix(scale=2.0))))
    cases = {
        "truncated": ([P.TAG, _header()], ErrorCode.MALFORMED_MESSAGE),
        "truncated submit": (good_submit[:3], ErrorCode.MALFORMED_MESSAGE),
        "wrong version": ([b"dreamwire/99", _header(), b"{}"], ErrorCode.PROTOCOL_VERSION),
        "hello v99 body": ([P.TAG, _header(), b'{"protocol": 99}'], ErrorCode.PROTOCOL_VERSION),
        "not dreamwire": ([b"GET / HTTP/1.1", b"", b""], ErrorCode.MALFORMED_MESSAGE),
        "garbage header": ([P.TAG, b"\xff{{{", b"{}"], ErrorCode.MALFORMED_MESSAGE),
        "garbage body": (
            [P.TAG, _header(type="submit", job_id="abc"), b"{'x': 1"],
            ErrorCode.MALFORMED_MESSAGE,
        ),
        "size disagrees": (
            [good_submit[0], json.dumps(mismatch).encode(), *good_submit[2:]],
            ErrorCode.MALFORMED_MESSAGE,
        ),
        "100000x100000": (
            [good_submit[0], json.dumps(huge).encode(), *good_submit[2:]],
            ErrorCode.LIMIT_EXCEEDED,
        ),
        "unknown type": (
            [P.TAG, _header(type="format_disk"), b"{}"],
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
        ),
        "server-only type": (
            [P.TAG, _header(type="welcome"), b"{}"],
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
        ),
        "bad job": (
            [P.TAG, _header(type="submit", job_id="abc"), b'{"job_id": "abc", "cfg": "seven"}'],
            ErrorCode.INVALID_JOB,
        ),
        "path job id": (
            [P.TAG, _header(type="fetch_result", job_id="../../etc"), b"{}"],
            ErrorCode.INVALID_JOB,
        ),
        "too big output": (too_big, ErrorCode.LIMIT_EXCEEDED),
    }
    peer = RawPeer(backend.address)
    try:
        for name, (frames, code) in cases.items():
            answer = peer.ask(frames)
            assert answer is not None, name
            assert answer.type == P.ERROR, name
            assert answer.body["code"] == code.value, (name, answer.body)
            assert answer.body["message"], name
    finally:
        peer.close()
    _assert_good_client_served(backend.address)


def test_oversized_message_is_dropped_and_the_server_stays_up(backend):
    # Frames under the limit that add up to more than it: refused with a reply.
    peer = RawPeer(backend.address)
    try:
        half = np.zeros((3000, 1000, 3), np.uint8)  # 9 MB each, 18 MB together > 16 MB
        answer = peer.ask(_raw(P.Message(P.SUBMIT, {}, [half, half], job_id="big2")))
        assert answer is not None and answer.body["code"] == ErrorCode.MESSAGE_TOO_LARGE.value
    finally:
        peer.close()
    # One frame over the limit: libzmq (ZMQ_MAXMSGSIZE) drops the peer, no reply at all.
    peer = RawPeer(backend.address)
    try:
        big = np.zeros((3000, 3000, 2), np.uint8)  # 18 MB
        assert peer.ask(_raw(P.Message(P.SUBMIT, {}, [big], job_id="big")), timeout_ms=3000) is None
    finally:
        peer.close()
    _assert_good_client_served(backend.address)


CHILD = """
import sys
from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.job import Job

c = Client(sys.argv[1])
c.connect_wait(60)
job_id = c.submit(Job(prompt="fox", width=64, height=64, steps=int(sys.argv[2]), sampler="Euler", seed=5))
while True:
    if any(isinstance(e, ev.ProgressEvent) and e.progress.step >= 1 for e in c.wait(1.0)):
        break
print(job_id, flush=True)
sys.stdin.read()  # stay alive until killed
"""


def test_client_killed_mid_job_server_goes_on_and_result_is_on_disk(backend):
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend.address, "60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = child.stdout.readline().strip()
        assert job_id, "the child client never saw its job start"
    finally:
        child.kill()
        child.wait(10)
    record = backend.out_dir / "jobs" / job_id / "result.json"
    # A new client takes the job over by id: from disk if it finished, else reattached.
    c = Client(backend.address)
    try:
        c.fetch_result(job_id)
        events = collect(c, ended(job_id))
        (res,) = [e for e in events if isinstance(e, ev.ResultEvent)]
        assert res.result.images[0].seed == 5
        assert record.is_file()
        assert Path(res.result.images[0].path).is_file()
    finally:
        c.close()
    _assert_good_client_served(backend.address)


def test_list_models_lists_a_checkpoint_merged_after_the_start_and_forgets_a_removed_one(
    client, tiny_models
):
    """`list_models` reads the folders again (at most every RESCAN_INTERVAL_S), so a merge
    written while the backend runs is offered without a restart, and a job may name it."""
    import time

    from dreamwire.backend.cli import main

    folder = tiny_models / "models" / "Stable-diffusion"
    assert main(["models", "merge", "--models", str(tiny_models), "--primary", "tiny-sd1",
                 "--method", "No interpolation", "--name", "merged-late"]) == 0  # fmt: skip
    merged = folder / "merged-late.safetensors"

    def listed() -> list[str]:
        client.list_models()
        events = collect(client, lambda es: any(isinstance(e, ev.ModelsEvent) for e in es))
        return next(e for e in events if isinstance(e, ev.ModelsEvent)).capabilities["models"]

    try:
        deadline = time.monotonic() + 15
        while "merged-late" not in listed():
            assert time.monotonic() < deadline, "the merged checkpoint was never listed"
            time.sleep(0.5)
        result = client.run(small_job(model="merged-late", steps=1), timeout=120)
        assert result.model == "merged-late"
    finally:
        merged.unlink(missing_ok=True)
    deadline = time.monotonic() + 15
    while "merged-late" in listed():
        assert time.monotonic() < deadline, "a removed checkpoint stayed listed"
        time.sleep(0.5)


def test_a_changed_library_is_pushed_unasked_to_the_clients_that_asked(
    client, backend, tiny_models
):
    """The backend watches its model roots: a checkpoint added while it runs (here a hard
    link, as a merge or a copy would write it) and then removed reaches the connected
    client as `models_changed` with the new lists, no `list_models` sent; a client whose
    hello did not ask (an older one) is sent nothing it could not read."""
    import os

    ctx = zmq.Context.instance()
    older = ctx.socket(zmq.DEALER)
    older.linger = 0
    older.connect(backend.address)
    older.send_multipart(_raw(P.Message(P.HELLO, {"protocol": P.PROTOCOL_VERSION})))
    assert older.poll(30_000)
    assert P.decode(older.recv_multipart(), P.Limits()).type == P.WELCOME
    folder = tiny_models / "models" / "Stable-diffusion"
    added = folder / "pushed-late.safetensors"

    def pushed(present: bool):
        return lambda es: any(
            isinstance(e, ev.ModelsChanged)
            and ("pushed-late" in e.capabilities["models"]) == present
            for e in es
        )

    os.link(folder / "tiny-sd1.safetensors", added)
    try:
        collect(client, pushed(True), timeout=30)
        # The client's welcome holds the new lists, family included, for the host to show.
        assert client.welcome.model_families.get("pushed-late") == "sd1"
    finally:
        added.unlink(missing_ok=True)
    collect(client, pushed(False), timeout=30)
    assert "pushed-late" not in client.welcome.models
    try:
        assert not older.poll(0), "a client that did not ask was sent something"
    finally:
        older.close(0)
