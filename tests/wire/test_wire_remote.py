"""Remote mode: CurveZMQ keys, a non-loopback bind, PNG frames on the wire."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from tests.support import warm_python
from tests.support.wire import LONG_STEPS, collect, ended, first_step, small_job


def _error(events) -> bool:
    return any(isinstance(e, ev.ErrorEvent) for e in events)


def dreamwire(*args: str) -> subprocess.CompletedProcess:
    return warm_python.run(["-m", "dreamwire.backend", *args], timeout=120)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    for name in ("server", "alice", "bob", "mallory"):
        done = dreamwire("keys", str(root / name), "--name", name)
        assert done.returncode == 0, done.stderr
    assert (root / "server" / "server.key_secret").stat().st_mode & 0o077 == 0
    return root


def test_non_loopback_bind_without_keys_refuses_to_start(tiny_models, tmp_path):
    done = dreamwire(
        "serve", "--models", str(tiny_models), "--bind", "tcp://0.0.0.0:0", "--out", str(tmp_path)
    )
    assert done.returncode == 2
    assert "--keys" in done.stderr and "listening" not in done.stdout


def test_only_listed_keys_get_in_and_the_same_job_works(keys, backend_factory):
    backend = backend_factory(
        bind="tcp://0.0.0.0:0",
        keys_dir=keys / "server",
        client_keys=[keys / "alice" / "alice.key", keys / "bob" / "bob.key"],
    )
    server_key = keys / "server" / "server.key"

    # An unlisted key fails the handshake and is told so; it never hears the backend.
    mallory = Client(backend.address, server_key, keys / "mallory" / "mallory.key_secret")
    seen = collect(mallory, lambda es: mallory.state == ev.UNAUTHORIZED, timeout=30)
    assert not any(isinstance(e, ev.Welcome) for e in seen)
    mallory.close()

    # A client that does not even speak CURVE gets nothing at all.
    plain = Client(backend.address, heartbeat_timeout=2.0)
    plain.list_models()
    deadline = time.monotonic() + 4
    got = []
    while time.monotonic() < deadline:
        got += plain.wait(0.5)
    assert not any(isinstance(e, ev.Welcome | ev.ModelsEvent) for e in got)
    assert plain.state == ev.LOST and plain.welcome is None
    plain.close()

    # The listed key works, and the remote link carries PNG frames losslessly.
    alice = Client(backend.address, server_key, keys / "alice" / "alice.key_secret")
    assert alice.image_format == "png"
    raw = Client(
        backend.address, server_key, keys / "alice" / "alice.key_secret", image_format="raw"
    )
    try:
        init = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        a = alice.run(small_job(init_image=init, strength=0.5, seed=9), timeout=120)
        b = raw.run(small_job(init_image=init, strength=0.5, seed=9), timeout=120)
        assert alice.state == ev.CONNECTED
        np.testing.assert_array_equal(a.images[0].image, b.images[0].image)

        # With keys, a job belongs to the key: another client holding alice's key (a host
        # restarted with a new client id) may cancel it; bob, though let in, may not.
        bob = Client(backend.address, server_key, keys / "bob" / "bob.key_secret")
        job_id = alice.submit(small_job(steps=LONG_STEPS, seed=10))
        collect(alice, first_step(job_id))
        bob.cancel(job_id)
        (refused,) = [e for e in collect(bob, _error) if isinstance(e, ev.ErrorEvent)]
        assert refused.error.code == ErrorCode.NOT_OWNER
        bob.close()
        raw.cancel(job_id)
        assert any(isinstance(e, ev.Cancelled) for e in collect(raw, ended(job_id)))
        assert any(isinstance(e, ev.Cancelled) for e in collect(alice, ended(job_id)))
    finally:
        alice.close()
        raw.close()
    assert "refused a client with an unlisted key" in backend.log_text()
