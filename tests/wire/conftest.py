"""Fixtures for the wire tests: real backend processes over real sockets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# `tests.support` needs the repository root on sys.path (pytest puts only test folders there
# unless pyproject sets `pythonpath = ["."]`).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.backend import BackendProcess  # noqa: E402


@pytest.fixture(scope="session")
def backend(tiny_models, tmp_path_factory):
    """One backend shared by the wire tests that leave it healthy (tiny models; a 16 MB
    message limit and an 8-job queue so the limit tests stay cheap, a quick model watch). A cold start costs
    ~14 s of CPU in imports; tests/support/warm_python.py forks it from a warm interpreter
    in well under a second."""
    out = tmp_path_factory.mktemp("backend-out")
    proc = BackendProcess(
        [tiny_models],
        out,
        # The model roots watched every 0.5 s (2 s by default), so a pushed models_changed
        # arrives within a second or two.
        extra_args=["--max-message-mb", "16", "--max-queue", "8", "--watch-models", "0.5"],
    )
    with proc:
        yield proc


@pytest.fixture
def client(backend):
    """A client the shared backend has welcomed (a module may define its own)."""
    from dreamwire.shared.client import Client

    c = Client(backend.address)
    c.connect_wait(60)
    yield c
    c.close()


@pytest.fixture
def backend_factory(tiny_models, tmp_path):
    """Call with keyword arguments of BackendProcess (out_dir defaults to a fresh folder) to
    get a private backend, started; all are stopped at the end of the test."""
    started: list[BackendProcess] = []

    def make(**kw) -> BackendProcess:
        kw.setdefault("out_dir", tmp_path / f"out{len(started)}")
        proc = BackendProcess(kw.pop("models", [tiny_models]), **kw)
        started.append(proc)
        return proc.start()

    yield make
    for proc in started:
        proc.stop()
