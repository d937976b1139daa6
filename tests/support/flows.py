"""A folder of flow files for the animate tests: a square sliding right over a wall, with
depth and object ids (shared/animation/motion.py's format)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np

from dreamwire.shared.animation.motion import FrameMotion, flow_path, save_motion

SIZE = 64


def write_flows(folder, frames=3, speed=4):
    folder.mkdir()
    for t in range(1, frames + 1):
        to_prev = np.zeros((SIZE, SIZE, 2), np.float32)
        to_next = np.zeros_like(to_prev)
        depth = np.full((SIZE, SIZE), 10.0, np.float32)
        ids = np.ones((SIZE, SIZE), np.int32)
        x = 8 + speed * t
        sq = (slice(20, 44), slice(x, x + 24))
        to_prev[sq], to_next[sq], depth[sq], ids[sq] = (-speed, 0), (speed, 0), 4.0, 2
        save_motion(flow_path(folder, t), FrameMotion(to_prev, to_next, depth, ids))


def write_patch_flows(folder, frames=5):
    """A still wall; every frame but the first and last shows a patch of its own (rows
    8t..8t+8), which no other frame has: each keyframe in-between needs its own inpaint."""
    folder.mkdir()
    still = np.zeros((SIZE, SIZE, 2), np.float32)
    for t in range(1, frames + 1):
        depth = np.full((SIZE, SIZE), 10.0, np.float32)
        ids = np.ones((SIZE, SIZE), np.int32)
        if 1 < t < frames:
            depth[8 * t : 8 * t + 8, 20:28], ids[8 * t : 8 * t + 8, 20:28] = 5.0, t
        save_motion(flow_path(folder, t), FrameMotion(still, still, depth, ids))


def run_animate(source: list[str], flows, out, *extra) -> tuple[int, dict | None]:
    """`dreamwire animate` in this process on the tiny model (`source`: --models ROOT or
    --server ADDRESS), 2 Euler steps, seed 7; (exit code, its --json record)."""
    from dreamwire.backend.cli import main

    buf = io.StringIO()
    argv = ["animate", str(flows), *source, "--prompt", "a red fox",
            "--sampler", "Euler", "--steps", "2", "--cfg", "5", "--seed", "7",
            "--out", str(out), "--json", *extra]  # fmt: skip
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, (json.loads(buf.getvalue()) if code == 0 else None)
