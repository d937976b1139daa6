"""Independent pieces as separate jobs (shared/fanout.py) through a real backend: as many in
flight as the welcome lists workers (one here: the backend never holds two of them), the
results in order, resumed pieces skipped, and a cancel leaving nothing running."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.fanout import FanOut, run_blocking, worker_limit
from tests.support.wire import collect, first_step, small_job


def _positions(events: list, sent: list[str]) -> list[int]:
    """The queue position the backend gave each piece when it accepted it, in send order."""
    at = {e.job_id: e.position for e in events if isinstance(e, ev.Accepted)}
    return [at[j] for j in sent]


def test_one_worker_gets_one_piece_at_a_time_and_results_come_in_order(client):
    limit = worker_limit(client.welcome)
    assert limit == 1  # the single-process backend lists its one worker
    got, seen = [], []
    fan = FanOut(
        [1, 2, 3, 4],
        lambda k: small_job(seed=100 + k, tag=f"piece {k}"),
        limit,
        on_result=lambda k, r: got.append((k, r.tag, r.images[0].seed)),
        skip={3}.__contains__,  # on disk from an earlier run: never sent
    )
    run_blocking(client, fan, 120, watch=seen.append)
    assert got == [(1, "piece 1", 101), (2, "piece 2", 102), (4, "piece 4", 104)]
    assert fan.skipped == [3] and len(fan.sent) == 3
    # Each piece was sent only after the one before it ended: nothing was ever ahead of it.
    assert _positions(seen, fan.sent) == [0, 0, 0]

    # The same pieces with two in flight: the second waits behind the first in the
    # backend's queue, which is what a second worker would take.
    seen.clear()
    fan = FanOut([1, 2], lambda k: small_job(seed=100 + k), 2)
    run_blocking(client, fan, 120, watch=seen.append)
    assert _positions(seen, fan.sent) == [0, 1]


def test_cancel_mid_batch_leaves_no_job_running(client, backend):
    fan = FanOut([1, 2, 3, 4], lambda k: small_job(seed=k, steps=200, width=128, height=128), 2)
    fan.pump(client)
    first, second = fan.sent
    for e in collect(client, first_step(first)):
        fan.on_event(e, client)
    fan.cancel(client)
    assert fan.done and fan.error.code == ErrorCode.CANCELLED
    assert len(fan.sent) == 2  # pieces 3 and 4 were never sent
    ends = collect(
        client, lambda es: {e.job_id for e in es if isinstance(e, ev.Cancelled)} >= {first, second}
    )
    assert not any(isinstance(e, ev.ResultEvent) for e in ends)
    # The backend says (to a fresh client) that its worker runs nothing.
    deadline = time.monotonic() + 30
    while True:
        with Client(backend.address) as probe:
            (worker,) = probe.connect_wait(60).workers
        if worker.job == "":
            break
        assert time.monotonic() < deadline, f"still running {worker.job}"
        time.sleep(0.2)


def test_a_failed_piece_stops_the_rest_and_raises(client):
    fan = FanOut([1, 2, 3], lambda k: small_job(seed=k, model="no such model" * (k == 2)), 1)
    with pytest.raises(DreamwireError) as info:
        run_blocking(client, fan, 120)
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert fan.delivered == [1] and len(fan.sent) == 2


def test_fixed_seed_frames_resume_from_the_frames_on_disk(client, tmp_path):
    from dreamwire.shared.animation import independent
    from dreamwire.shared.animation.folder import FolderFrames

    io = FolderFrames(tmp_path / "flows", tmp_path / "frames")
    kept = np.full((64, 64, 3), 9, np.uint8)
    io.save(2, kept)  # made by a run that was stopped
    before = io.png(2).read_bytes()
    tags = []

    made = []

    def make(req):
        tags.append(req.kind)
        made.append(small_job(seed=5, tag=f"frame {req.frame}"))
        return made[-1]

    fan = independent.frames_fanout([1, 2, 3], io, make, worker_limit(client.welcome))
    run_blocking(client, fan, 120)
    # Frames never hold up the artist's single pictures.
    assert [j.priority for j in made] == ["batch", "batch"]
    assert tags == ["txt2img", "txt2img"] and fan.skipped == [2]
    assert [(r.frame, r.source) for r in independent.reports(fan)] == [
        (1, "generated"),
        (2, "on disk"),
        (3, "generated"),
    ]
    assert io.png(2).read_bytes() == before
    one, three = io.load(1), io.load(3)
    assert one.shape == (64, 64, 3) and np.array_equal(one, three)  # one seed for every frame


def test_a_batch_split_in_parts_makes_the_one_batch_jobs_pictures(client):
    from dreamwire.shared.batch_split import merge, split_batch

    whole = client.run(small_job(batch=3, seed=40), timeout=120)
    parts = split_batch(small_job(batch=3, seed=40), 2)
    back = []
    fan = FanOut(range(len(parts)), parts.__getitem__, 2, on_result=lambda _, r: back.append(r))
    run_blocking(client, fan, 120)
    merged = merge(back)
    assert [g.seed for g in merged.images] == [g.seed for g in whole.images] == [40, 41, 42]
    for mine, theirs in zip(merged.images, whole.images, strict=True):
        diff = np.abs(mine.image.astype(int) - theirs.image.astype(int))
        assert diff.max() <= 2  # the same picture; batched arithmetic may round differently


def test_keyframe_in_betweens_go_out_together_and_are_saved_in_order(client, tmp_path):
    from dreamwire.shared.animation import independent
    from dreamwire.shared.animation.folder import FolderFrames
    from dreamwire.shared.animation.sequence import Mode, RequestGroup, SequenceSettings, run
    from tests.support.flows import write_patch_flows

    # Frames 2-4 each show a patch of their own that neither key (1, 5) has, so each
    # in-between needs an inpaint, and none needs another's.
    write_patch_flows(tmp_path / "flows")

    class Recording(FolderFrames):
        def save(self, frame, image):
            saved.append(frame)
            super().save(frame, image)

    saved, seen = [], []
    io = Recording(tmp_path / "flows", tmp_path / "frames")

    def make(req):
        return small_job(
            seed=5,
            tag=f"frame {req.frame}",
            init_image=req.init,
            strength=req.strength or 0.75,
            mask=req.mask,
        )

    steps = run([1, 2, 3, 4, 5], SequenceSettings(Mode.KEYFRAMES, key_every=4, denoise=0), io, True)
    kinds = []
    try:
        message = next(steps)
        while True:
            if isinstance(message, RequestGroup):
                kinds.append([r.kind for r in message.requests])
                fan = run_blocking(
                    client, independent.group_fanout(message, make, 3), 120, seen.append
                )
                message = steps.send(None)
            else:
                kinds.append(message.kind)
                got = {}  # one request alone: a group of one, through the same code
                alone = independent.group_fanout(RequestGroup([message], got.__setitem__), make, 1)
                run_blocking(client, alone, 120)
                message = steps.send(got[message.frame])
    except StopIteration as stop:
        reports = stop.value
    # Key 1 alone, key 5 carried from it (the patches on the way inpainted), then the
    # three in-betweens as one group: all three in flight at once (queued 0, 1, 2 behind
    # each other on this one-worker backend), saved in frame order.
    assert kinds == ["txt2img", "inpaint", ["inpaint"] * 3]
    assert _positions(seen, fan.sent) == [0, 1, 2]
    assert saved == [1, 5, 2, 3, 4]
    assert [(r.frame, r.source, r.cost) for r in reports] == [
        (1, "generated", 1.0),
        (2, "propagated", 1.0),
        (3, "propagated", 1.0),
        (4, "propagated", 1.0),
        (5, "warped", 1.0),
    ]
    # Each in-between was inpainted where its own patch is, the wall kept from the keys.
    wall = io.load(1)[40:, 40:]
    for t in (2, 3, 4):
        assert np.array_equal(io.load(t)[40:, 40:], wall)
