"""Jobs per second through the ZeroMQ front with 1 vs 2 Ray CPU actors on the same tiny jobs
(issue 16's proof: the ratio), and the front's added latency per job against the
single-process backend.

    .venv/bin/python bench/bench_cluster.py [--jobs 12] [--steps 8] [--size 64]

Each configuration is a real `dreamwire serve` process on the tiny models (`--ray` with a
local cluster of `--ray-actors N`, or none); every actor is warmed up with a job first (its
model loaded), then `--jobs` jobs are submitted at once and timed from the first submit to
the last result. Latency: one job at a time, submit to result, median of `--latency-jobs`,
on the 1-actor pool and on the single backend. Also the CPU seconds per job of the timed run
in the front process and in the actors (/proc): on a 2-core machine the front shares the
cores with two actors, so the ratio cannot pass 2 * actor / (actor + front + Ray's own
processes). Needs the `cluster` extra (ray).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support lives beside dreamwire, not inside it
    sys.path.insert(0, str(ROOT))

from dreamwire.shared import events as ev  # noqa: E402
from dreamwire.shared.client import Client  # noqa: E402
from tests.support.backend import BackendProcess  # noqa: E402
from tests.support.wire import collect, ended, small_job  # noqa: E402

START_TIMEOUT_S = 900


@dataclass(frozen=True)
class Row:
    rate: float  # jobs per second
    latency: float  # seconds, submit to result, one job at a time (median)
    front_cpu: float  # CPU seconds per job in the front process
    worker_cpu: float  # CPU seconds per job in the actors (0 for the single backend)


def _job(args: argparse.Namespace, seed: int):
    return small_job(width=args.size, height=args.size, steps=args.steps, seed=seed)


def _run_all(client: Client, jobs: list) -> float:
    """Seconds from the first submit to the last result; every job must end in a result."""
    t0 = time.perf_counter()
    ids = [client.submit(j) for j in jobs]
    events = collect(client, lambda es: all(ended(i)(es) for i in ids), timeout=3600)
    elapsed = time.perf_counter() - t0
    done = {e.job_id for e in events if isinstance(e, ev.ResultEvent)}
    assert done >= set(ids), [e for e in events if isinstance(e, ev.ErrorEvent)]
    return elapsed


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _latency(client: Client, args: argparse.Namespace) -> float:
    """Median seconds, submit to result, one job at a time."""
    times = [_run_all(client, [_job(args, 900 + i)]) for i in range(args.latency_jobs)]
    return statistics.median(times)


def measure(models: Path, out: Path, args: argparse.Namespace, actors: int | None):
    extra = ["--ray", "--ray-actors", str(actors)] if actors else []
    env = {"RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    with BackendProcess(
        [models], out, extra_args=extra, env=env, ready_timeout=START_TIMEOUT_S
    ) as backend:
        client = Client(backend.address)
        try:
            client.connect_wait(60)
            _run_all(client, [_job(args, i) for i in range(actors or 1)])  # warm every actor
            latency = _latency(client, args)
            # Where the CPU of the timed run goes: the front (ZeroMQ, dispatch, saving) and
            # the actors (none in the single backend: its front runs the jobs).
            pids = {w.pid for w in client.connect_wait(60).workers} - {0, backend.pid}
            before = _cpu_s(backend.pid), sum(map(_cpu_s, pids))
            seconds = _run_all(client, [_job(args, 100 + i) for i in range(args.jobs)])
            after = _cpu_s(backend.pid), sum(map(_cpu_s, pids))
        finally:
            client.close()
    front, workers = ((a - b) / args.jobs for a, b in zip(after, before, strict=True))
    return Row(args.jobs / seconds, latency, front, workers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--latency-jobs", type=int, default=5)
    args = ap.parse_args()
    from dreamwire.backend.tiny import build_all

    with tempfile.TemporaryDirectory(prefix="dreamwire-cluster-") as tmp:
        models = Path(tmp) / "models"
        build_all(models)
        rows = {
            name: measure(models, Path(tmp) / name, args, actors)
            for name, actors in (("single", None), ("ray-1", 1), ("ray-2", 2))
        }
    print(f"{args.jobs} jobs, {args.size}x{args.size}, {args.steps} steps, tiny SD1")
    print(
        f"{'backend':<10} {'jobs/s':>8} {'latency ms':>11} {'front cpu ms/job':>17} {'actor cpu ms/job':>17}"
    )
    for name, r in rows.items():
        print(
            f"{name:<10} {r.rate:8.3f} {r.latency * 1000:11.0f} "
            f"{r.front_cpu * 1000:17.0f} {r.worker_cpu * 1000:17.0f}"
        )
    print(f"ratio 2 actors / 1 actor: {rows['ray-2'].rate / rows['ray-1'].rate:.2f}x")
    added = rows["ray-1"].latency - rows["single"].latency
    print(f"front's added latency per job (1 actor vs single backend): {added * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
