"""bench_animation.py's AnimateDiff column: the tiny SD1 model run for real (the engine,
in-process) on a captured scene, fixed-seed per-frame txt2img against one AnimateDiff batch,
both steered by the same per-frame depth ControlNet (the capture's depth), scored by the
same temporal-consistency score along Blender's true vectors.

The tiny model's weights are random, so the absolute errors say nothing about quality; the
ratio between the two runs on the same frames, seed, steps and controls is what the column
records: how much the motion module ties consecutive frames together (error), and what it
costs per frame in wall-clock time against generating each frame on its own (cost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.shared.animation.consistency import score
from dreamwire.shared.animation.folder import FolderFrames
from dreamwire.shared.animation.occlusion import OcclusionSettings

STEPS, SEED, PROMPT = 4, 1234, "a (box:1.1) and a cylinder in front of a wall"
MODULE = "tiny_mm_sd1"
SCORED_ON = OcclusionSettings(surface_tests=False)  # bench_animation's pixel set


@dataclass
class Column:
    fixed_error: float
    animatediff_error: float
    fixed_seconds: float  # per frame
    animatediff_seconds: float  # per frame

    @property
    def error_ratio(self) -> float:  # fixed seed's error over AnimateDiff's
        return self.fixed_error / max(self.animatediff_error, 1e-9)

    @property
    def cost_ratio(self) -> float:  # AnimateDiff's seconds per frame over fixed seed's
        return self.animatediff_seconds / max(self.fixed_seconds, 1e-9)


def tiny_engine(root: Path):
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny import build_all

    build_all(root)
    return Engine(ModelLibrary([root]), device="cpu", extensions=engine_extensions())


def depth_images(motions: list) -> list[np.ndarray]:
    """The capture's depth as ControlNet depth images (near bright), over one range for the
    whole scene so a still surface keeps its grey from frame to frame."""
    zs = [np.where(np.isfinite(m.depth), m.depth, np.nan) for m in motions]
    near, far = np.nanmin(zs), np.nanmax(zs)
    out = []
    for z in zs:
        d = np.nan_to_num((far - z) / max(far - near, 1e-6), nan=0.0)
        out.append(np.repeat(np.rint(d * 255).astype(np.uint8)[..., None], 3, -1))
    return out


def run(engine, flows: Path, frames: list[int]) -> Column:
    from dreamwire.shared.animatediff import AnimateDiff, FrameControl
    from dreamwire.shared.job import ControlUnit, Job
    from dreamwire.shared.job_mode import JobMode

    io = FolderFrames(flows, flows.parent / "unused")
    motions = {f: io.motion(f) for f in frames}
    depth = depth_images([motions[f] for f in frames])
    h, w = depth[0].shape[:2]
    base = dict(prompt=PROMPT, model="tiny-sd1", sampler="Euler", steps=STEPS, cfg=5.0)
    base.update(seed=SEED, width=w, height=h)
    engine.run(Job(**base))  # the checkpoint loaded before either clock starts
    t0 = time.perf_counter()
    fixed = {}
    for f, d in zip(frames, depth, strict=True):
        job = Job(controls=[ControlUnit("depth", d)], **base)
        fixed[f] = engine.run(job).images[0].image
    fixed_s = (time.perf_counter() - t0) / len(frames)
    settings = AnimateDiff(MODULE, len(frames), controls=[FrameControl("", depth, 1.0, "depth")])
    t0 = time.perf_counter()
    result = engine.run(Job(mode=JobMode.ANIMATEDIFF, animatediff=settings, **base))
    ad_s = (time.perf_counter() - t0) / len(frames)
    ad = {f: g.image for f, g in zip(frames, result.images, strict=True)}

    def error(images: dict) -> float:
        return float(np.mean([p.error for p in score(frames, images, motions, SCORED_ON)]))

    return Column(error(fixed), error(ad), fixed_s, ad_s)
