"""The Ray pool's pure parts, without Ray: which idle worker takes a job (model affinity),
the queue with several jobs running and a re-queued one, and `--ray` without the extra."""

from __future__ import annotations

import sys

from dreamwire.backend.cli import main
from dreamwire.backend.server.affinity import Candidate, pick_worker
from dreamwire.backend.server.jobqueue import JobQueue
from tests.support.wire import small_job


def test_an_idle_worker_holding_the_model_wins_else_the_least_loaded():
    a = Candidate("a", ("tiny-sd1", "tiny-sdxl"), jobs_run=5)
    b = Candidate("b", (), jobs_run=0)
    c = Candidate("c", ("tiny-sd1-diffusers",), jobs_run=1)
    assert pick_worker("tiny-sdxl.safetensors", [b, c, a]).name == "a"
    assert pick_worker("tiny-sd1-diffusers", [a, b, c]).name == "c"
    # Nobody holds it: the emptiest cache loads it (it evicts nothing).
    assert pick_worker("other", [a, c, b]).name == "b"
    assert pick_worker("", [a, c]).name == "c"
    # The worker that died under the job never gets it back while it is the only one idle.
    assert pick_worker("tiny-sd1", [a, b], avoid="a").name == "b"
    assert pick_worker("tiny-sd1", [a], avoid="a") is None
    assert pick_worker("tiny-sd1", []) is None


def test_several_jobs_run_at_once_and_a_requeued_one_goes_first_in_its_class():
    q = JobQueue()
    first, second, third = (q.put(small_job(job_id=f"j{i}")) for i in range(3))
    assert q.take(0) is first and q.take(0) is second
    assert {e.job_id for e in q.running_entries()} == {"j0", "j1"}
    assert q.running is first  # the earliest queued, for the heartbeat
    assert q.position("j2") == 2  # both running jobs are ahead of it
    q.requeue(first)  # its worker died
    assert q.find("j0") is first and q.position("j0") == 1
    assert q.take(0) is first  # ahead of j2, which came later
    q.done(second)
    assert q.running_entries() == [first]


def test_ray_without_the_extra_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    rc = main(["serve", "--models", str(tmp_path), "--out", str(tmp_path / "out"), "--ray"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "[backend_unavailable]" in err and "dreamwire[cluster]" in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was set up
