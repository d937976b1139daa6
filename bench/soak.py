"""Soak a real backend process: valid tiny jobs, bad messages, cancels, fetches and
reconnects from a few clients, interleaved, for a bounded count of messages (or time);
sample the backend's resident memory and open file descriptors every 1,000 messages, and
check that neither keeps growing (issue 22, "Fuzzing in CI": the long run).

    .venv/bin/python bench/soak.py [--messages 20000] [--clients 3] [--seconds 280]
                                   [--json bench/soak.json] [--seed 0]

Each client is a thread with its own DEALER; every message waits for its answer, judged as
tests/wire/test_wire_fuzz_backend.py judges one (its normal reply, or an error with a stable
code other than `internal`, naming its msg id). A bystander sends a heartbeat every 0.2 s and
the slowest answer per window is reported. The backend runs on the tiny models with a
4-job queue, so `queue_full` is part of the mix. RSS comes from /proc/PID/status (VmRSS),
descriptors from /proc/PID/fd.

Verdict (exit 1 if any fails): every message answered without a problem, the process alive,
no traceback in its log, RSS growing by at most --rss-slope KiB per 1,000 messages (least
squares over the second half of the samples: the allocator settles in steps early on, a leak
keeps growing), and descriptors at the end, with the queue drained, within --fd-slack of the
first sample (taken after a warm-up of 300 messages).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support lives beside dreamwire, not inside it
    sys.path.insert(0, str(ROOT))

from dreamwire.shared import protocol as P  # noqa: E402
from tests.support import fuzzwire as F  # noqa: E402
from tests.support.backend import BackendProcess  # noqa: E402

SAMPLE_EVERY = 1000
WARMUP_MESSAGES = 300


@dataclass
class Sample:
    messages: int
    seconds: float
    rss_kib: int
    fds: int
    accepted: int
    results: int
    queue_full: int
    errors: int
    reconnects: int
    heartbeat_max_s: float


@dataclass
class Tally:
    """Counts shared by the client threads (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: int = 0
    accepted: int = 0
    results: int = 0
    queue_full: int = 0
    errors: int = 0
    reconnects: int = 0
    problems: list[str] = field(default_factory=list)


# -- the mix -------------------------------------------------------------------------------


def bad_message(rng: random.Random, msg_id: str, job_id: str) -> F.Draft | list[bytes]:
    """One broken message, as a Draft or (broken below the JSON) as frames."""
    fmt = rng.choice(F.IMAGE_FORMATS)
    job = F.tiny_job(job_id, 1, "img2img", "normal", rng.randrange(4))
    sub = F.request(P.SUBMIT, msg_id, job_id, image_format=fmt, job=job)
    hello = F.request(P.HELLO, msg_id, "")
    big = "1" + "0" * 400
    choices = [
        lambda: F.set_path(hello, "header", ["sent"], F.Raw(rng.choice(F.RAW_NUMBERS))),
        lambda: F.set_path(hello, "header", ["type"], rng.choice(["welcome", "", "x" * 300])),
        lambda: F.set_path(sub, "header", ["job_id"], "../" * rng.randrange(1, 40)),
        lambda: F.set_path(hello, "body", [], rng.choice([[1], "x", 3, None])),
        lambda: F.set_path(sub, "body", ["width"], rng.choice(["wide", -64, 10**9, None])),
        lambda: F.set_path(sub, "body", ["seed"], F.Raw(big)),
        lambda: F.set_path(sub, "body", ["prompt"], "x" * rng.choice([70_000, 5_000_000])),
        lambda: F.set_path(sub, "body", ["loras"], [{"name": 3, "weight": "x"}]),
        lambda: F.set_path(sub, "header", ["buffers", 0, "shape"], [0, 10**12]),
        lambda: F.set_path(sub, "header", ["buffers", 0, "nbytes"], rng.randrange(10**6)),
        lambda: F.set_path(sub, "header", ["buffers", 0, "dtype"], "float64"),
        lambda: F.set_path(sub, "header", ["buffers", 0, "format"], "jpeg"),
        lambda: F.truncate(sub.frames(), 3, rng.randrange(2000)),
        lambda: F.flip(sub.frames(), 3, rng.randrange(12_300), rng.randrange(1, 256)),
        lambda: [*sub.frames(), b"extra"],
        lambda: F.drop(sub.frames(), 2),
        lambda: _with_frame(sub, F.lying_png(2**31 - 1, 1, 8, 2, zlib.compress(bytes(99)))),
        lambda: _with_frame(sub, zlib.compress(bytes(10**6)), "zlib"),
        lambda: F.replace(hello.frames(), 1, rng.randbytes(rng.randrange(64))),
        lambda: F.truncate(hello.frames(), 1, rng.randrange(40)),
    ]
    return rng.choice(choices)()


def _with_frame(draft: F.Draft, frame: bytes, fmt: str = "png") -> F.Draft:
    spec = {"dtype": "uint8", "shape": [64, 64, 3], "nbytes": len(frame), "format": fmt}
    out = F.set_path(draft, "header", ["buffers"], [spec])
    out.buffers = [frame]
    return out


class Client(threading.Thread):
    """One host: submits tiny jobs, cancels and fetches its own, sends bad messages, and
    now and then drops its connection and comes back."""

    def __init__(self, n: int, address: str, count: int, seed: int, tally: Tally, on_count):
        super().__init__(name=f"soak-client-{n}", daemon=True)
        self.n, self.address, self.count, self.tally = n, address, count, tally
        self.rng = random.Random(seed * 1000 + n)
        self.on_count = on_count
        self.jobs: list[str] = []
        self.ids = 0
        self.stop = threading.Event()

    def msg_id(self) -> str:
        self.ids += 1
        return f"c{self.n}m{self.ids:07d}"

    def run(self) -> None:
        # A fixed routing id, as the shared Client keeps one across reconnects: the backend
        # hands it over to the new connection, and the jobs stay this client's.
        identity = f"csoak{self.n}".encode()
        peer = F.Peer(self.address, identity)
        try:
            for _ in range(self.count):
                if self.stop.is_set():
                    break
                if self.rng.random() < 0.01:
                    peer.close()
                    peer = F.Peer(self.address, identity)
                    with self.tally.lock:
                        self.tally.reconnects += 1
                self.one(peer)
                self.on_count()
        finally:
            peer.close()

    def one(self, peer: F.Peer) -> None:
        rng, msg_id = self.rng, self.msg_id()
        roll = rng.random()
        known = rng.choice(self.jobs) if self.jobs else "nojob"
        if roll < 0.25:
            job_id = f"soak{self.n}-{self.ids}"
            mode = rng.choice(["txt2img", "img2img"])
            job = F.tiny_job(job_id, rng.choice([1, 2]), mode, rng.choice(["normal", "batch"]), 0)
            fmt = rng.choice(F.IMAGE_FORMATS)
            draft = F.request(P.SUBMIT, msg_id, job_id, image_format=fmt, job=job)
        elif roll < 0.35:
            draft = F.request(P.CANCEL, msg_id, known)
        elif roll < 0.45:
            draft = F.request(P.FETCH_RESULT, msg_id, known)
        elif roll < 0.55:
            kind = rng.choice([P.HEARTBEAT, P.LIST_MODELS, P.HELLO])
            draft = F.request(kind, msg_id, "", image_format=rng.choice(F.IMAGE_FORMATS))
        else:
            draft = bad_message(rng, msg_id, f"soakbad{self.n}-{self.ids}")
        pristine = isinstance(draft, F.Draft) and roll < 0.55
        frames = draft.frames() if isinstance(draft, F.Draft) else draft
        sent = F.Draft(F.header_as_sent(frames), None)
        expect = F.reply_to_expected(sent.header)
        if expect != msg_id:  # the header no longer names it: a throwaway socket
            self.judge(sent, expect, False, self.throwaway(frames))
            return
        peer.send(frames)
        answer = peer.answer(F.answers_request(sent), 60.0)
        self.judge(sent, expect, pristine, answer)
        if answer is not None and answer.type == P.ACCEPTED and sent.kind == P.SUBMIT:
            self.jobs = [*self.jobs[-19:], answer.job_id]
        # Job events for this client's jobs arrive between answers: counted, then dropped.
        with self.tally.lock:
            self.tally.results += sum(m.type == P.RESULT for m in peer.seen)
        peer.seen.clear()

    def throwaway(self, frames: list[bytes]) -> P.Message | None:
        peer = F.Peer(self.address)
        try:
            peer.send(frames)
            return peer.first(60.0)
        finally:
            peer.close()

    def judge(self, sent: F.Draft, expect: str | None, pristine: bool, answer) -> None:
        problem = F.problem(sent, expect, pristine, answer)
        with self.tally.lock:
            self.tally.messages += 1
            if problem:
                self.tally.problems.append(f"{sent.kind or 'mangled'}: {problem}")
            if answer is None:
                return
            if answer.type == P.ACCEPTED:
                self.tally.accepted += 1
            elif answer.type == P.RESULT:
                self.tally.results += 1
            elif answer.type == P.ERROR:
                self.tally.errors += 1
                self.tally.queue_full += answer.body.get("code") == "queue_full"


class Bystander(threading.Thread):
    """A clean client's heartbeat every 0.2 s; the slowest answer since the last `take`."""

    def __init__(self, address: str):
        super().__init__(name="soak-bystander", daemon=True)
        self.address = address
        self.stop = threading.Event()
        self.worst = 0.0
        self.lock = threading.Lock()

    def run(self) -> None:
        peer = F.Peer(self.address)
        n = 0
        try:
            while not self.stop.wait(0.2):
                n += 1
                delay = peer.heartbeat(f"bystander{n}", timeout=10.0)
                with self.lock:
                    self.worst = max(self.worst, delay)
        finally:
            peer.close()

    def take(self) -> float:
        with self.lock:
            worst, self.worst = self.worst, 0.0
        return worst


# -- the run -------------------------------------------------------------------------------


def slope_per_1000(samples: list[Sample]) -> float:
    """Least-squares growth of RSS in KiB per 1,000 messages."""
    xs = [s.messages for s in samples]
    ys = [s.rss_kib for s in samples]
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def soak(args: argparse.Namespace, backend: BackendProcess) -> tuple[list[Sample], Tally]:
    tally = Tally()
    samples: list[Sample] = []
    start = time.monotonic()
    bystander = Bystander(backend.address)
    next_sample = [WARMUP_MESSAGES]

    def sample() -> None:
        rss, fds = F.process_usage(backend.pid)
        with tally.lock:
            s = Sample(
                tally.messages,
                round(time.monotonic() - start, 1),
                rss,
                fds,
                tally.accepted,
                tally.results,
                tally.queue_full,
                tally.errors,
                tally.reconnects,
                round(bystander.take(), 3),
            )
        samples.append(s)
        print(_row(s), flush=True)

    sampling = threading.Lock()

    def on_count() -> None:
        # Whichever client crosses the next mark takes the sample; the others go on.
        with sampling:
            if tally.messages >= next_sample[0]:
                next_sample[0] += SAMPLE_EVERY
                sample()

    per_client = (args.messages + WARMUP_MESSAGES) // args.clients
    clients = [
        Client(n, backend.address, per_client, args.seed, tally, on_count)
        for n in range(args.clients)
    ]
    print(_HEADER, flush=True)
    bystander.start()
    for c in clients:
        c.start()
    deadline = start + args.seconds
    for c in clients:
        c.join(max(0.0, deadline - time.monotonic()))
    for c in clients:
        c.stop.set()
        c.join(120)
    _drain(backend.address, time.monotonic() + 120)
    sample()  # the queue empty again: what the backend holds at rest
    bystander.stop.set()
    bystander.join(15)
    return samples, tally


def _drain(address: str, deadline: float) -> None:
    """Wait until the backend has no job queued or running (its heartbeat says)."""
    peer = F.Peer(address)
    try:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            peer.send(F.request(P.HEARTBEAT, f"drain{n}", "").frames())
            beat = peer.answer(lambda m, i=f"drain{n}": m.reply_to == i, 10.0)
            if beat is not None and not beat.body.get("queued") and not beat.body.get("running"):
                return
            time.sleep(0.5)
    finally:
        peer.close()


_HEADER = (
    "| messages | s | RSS MiB | fds | accepted | results | queue_full | errors | reconnects "
    "| slowest heartbeat s |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(s: Sample) -> str:
    return (
        f"| {s.messages} | {s.seconds:.0f} | {s.rss_kib / 1024:.1f} | {s.fds} | {s.accepted} "
        f"| {s.results} | {s.queue_full} | {s.errors} | {s.reconnects} | {s.heartbeat_max_s:.3f} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000, help="after a warm-up of 300")
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=280.0, help="stop sending after this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "soak.json")
    # 128 bytes retained per message would be 128 KiB per 1,000: a leaked header, body or
    # array of any message, or a per-connection record, shows far above it.
    ap.add_argument("--rss-slope", type=float, default=128.0, help="KiB per 1,000 messages")
    ap.add_argument("--fd-slack", type=int, default=8)
    args = ap.parse_args()

    from dreamwire.backend.tiny import build_all

    with tempfile.TemporaryDirectory(prefix="dreamwire-soak-") as tmp:
        build_all(Path(tmp) / "models")
        backend = BackendProcess(
            [Path(tmp) / "models"], Path(tmp) / "out", extra_args=["--max-queue", "4"]
        )
        with backend:
            samples, tally = soak(args, backend)
            alive = backend.alive
            log = backend.log_text()
    # The allocator and caches settle in steps early on; a leak keeps growing, so it shows
    # in the second half of the run too.
    slope_all = slope_per_1000(samples)
    slope = slope_per_1000(samples[len(samples) // 2 :])
    fd_growth = samples[-1].fds - samples[0].fds
    checks = {
        "every message answered without a problem": not tally.problems,
        "backend alive": alive,
        "no traceback in the backend log": "Traceback" not in log,
        f"RSS slope (second half) {slope:.0f} KiB/1000 msgs <= {args.rss_slope:.0f}": (
            slope <= args.rss_slope
        ),
        f"descriptors grew by {fd_growth} <= {args.fd_slack}": fd_growth <= args.fd_slack,
    }
    print(
        f"\nRSS slope: {slope_all:.1f} KiB per 1,000 messages over the run, {slope:.1f} over "
        "its second half"
    )
    for problem in tally.problems[:20]:
        print("problem:", problem)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    args.json.write_text(
        json.dumps(
            {
                "args": {k: str(v).replace(f"{ROOT}/", "") for k, v in vars(args).items()},
                "samples": [asdict(s) for s in samples],
                "rss_slope_kib_per_1000": round(slope_all, 1),
                "rss_slope_second_half_kib_per_1000": round(slope, 1),
                "fd_growth": fd_growth,
                "problems": tally.problems,
                "checks": checks,
            },
            indent=1,
        )
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
