"""Temporal consistency of the animation modes (issue 15) on scripted scenes captured in
real Blender, with a deterministic stand-in for the generator.

    .venv/bin/python bench/bench_animation.py [--size 128] [--frames 12]
                                              [--json bench/animation.json] [--scenes walk]

The scenes (bench/animation_scenes.py: a turning box and cylinder, a camera dolly past
boxes, an armature walk; --scenes runs some and merges their rows into the JSON) are
captured by the add-on's capture_motion as flow files, in a fresh bpy process.
Each mode then runs through shared/animation/sequence.run, the same generator of requests
the N-panel's Render Animation and the CLI drive, against a stand-in generator that is
deterministic so that diffusion noise does not hide the result:

- txt2img of frame t = the frame's conditioning (a colour per object, shaded by depth:
  what the depth/segmentation controls pin down) + a fixed-seed detail pattern that lives
  in SCREEN space (the same seed gives the same noise at the same pixel, whatever moved:
  the reason fixed-seed frames flicker and swim);
- img2img at strength s = (1 - s) * init + s * txt2img (a linear model of partial
  denoising: pessimistic, since real img2img keeps more of the init's structure);
- inpaint at strength 1 = txt2img inside the mask, the init outside.

Scores (shared/animation/consistency.py): `error`, the mean absolute difference (0..255)
between frame t and frame t-1 carried to it along Blender's true vectors, over the pixels
the vectors carry (mean over all consecutive pairs; which tests pick them: SCORED_ON);
`regenerated`, the mean share of
pixels generated from scratch per frame after the first; `cost`, denoising steps run per
frame as a share of one txt2img (img2img at s costs s); `detail`, the last frame's fine
detail (mean absolute Laplacian) over a fresh txt2img's of the same frame: warping
resamples, so a warp never refreshed softens frame after frame, which the error alone
would reward. The table goes to RESULTS.md.

The AnimateDiff column (bench/animatediff_column.py; `--no-animatediff` skips it) runs the
tiny SD1 model for real on each scene: fixed-seed per-frame txt2img and one AnimateDiff
batch, both with the capture's depth as a per-frame ControlNet, scored the same way; it
records fixed seed's error over AnimateDiff's, and AnimateDiff's seconds per frame over
fixed seed's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamwire.shared.animation.consistency import score  # noqa: E402
from dreamwire.shared.animation.folder import FolderFrames, flow_frames  # noqa: E402
from dreamwire.shared.animation.occlusion import OcclusionSettings  # noqa: E402
from dreamwire.shared.animation.sequence import Mode, Request, SequenceSettings, run  # noqa: E402

AMPLITUDE = 40.0  # std of the seed's detail pattern, in 0..255 units
# The pixels the error is taken over: the occlusion tests as they were when the first rows
# of RESULTS.md were measured, so that a change to the tests the modes use is measured on
# the same pixels (a test that rejects more would otherwise also shrink what is scored).
# `error_now` is the same error over the pixels today's tests carry.
SCORED_ON = OcclusionSettings(surface_tests=False)


class StandIn:
    def __init__(self, io: FolderFrames, shape: tuple[int, int], seed: int = 1234) -> None:
        self.io = io
        rng = np.random.default_rng(seed)
        n = rng.normal(size=(*shape, 3)).astype(np.float32)
        for _ in range(2):  # a little spatial correlation, like generated texture detail
            n = (n + np.roll(n, 1, 0) + np.roll(n, 1, 1) + np.roll(n, (1, 1), (0, 1))) / 4
        self.detail = n / n.std() * AMPLITUDE

    def txt2img(self, frame: int) -> np.ndarray:
        m = self.io.motion(frame)
        ids = m.object_index
        palette = np.stack(
            [(ids * 67) % 200 + 40, (ids * 131) % 200 + 40, (ids * 29) % 200 + 40], -1
        )
        z = np.where(np.isfinite(m.depth), m.depth, 50.0)
        shade = np.clip(1.2 - 0.05 * z, 0.3, 1.0)[..., None]
        return palette * shade + self.detail

    def __call__(self, req: Request) -> np.ndarray:
        fresh = self.txt2img(req.frame)
        if req.init is None:
            out = fresh
        elif req.mask is not None:
            out = np.where(req.mask[..., None] > 0, fresh, req.init)
        else:
            out = (1 - req.strength) * req.init + req.strength * fresh
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Row:
    scene: str
    mode: str
    setting: str
    error: float
    regenerated: float
    cost: float
    detail: float
    seconds: float
    error_now: float


def run_mode(flows: Path, out: Path, frames: list[int], s: SequenceSettings) -> tuple:
    io = FolderFrames(flows, out)
    shape = io.motion(frames[0]).shape
    gen = StandIn(io, shape)
    t0 = time.perf_counter()
    steps = run(frames, s, io)
    try:
        req = next(steps)
        while True:
            req = steps.send(gen(req))
    except StopIteration as stop:
        reports = stop.value
    seconds = time.perf_counter() - t0
    images = {f: io.load(f) for f in frames}
    motions = {f: io.motion(f) for f in frames}
    pairs = score(frames, images, motions, SCORED_ON)
    err = float(np.mean([p.error for p in pairs]))
    err_now = float(np.mean([p.error for p in score(frames, images, motions)]))
    last = frames[-1]
    detail = laplacian(images[last]) / laplacian(gen(Request(last)))
    regen = float(np.mean([r.regenerated for r in reports[1:]]))
    cost = float(np.mean([r.cost for r in reports]))
    return err, regen, cost, detail, seconds, err_now


def laplacian(img: np.ndarray) -> float:
    f = img.astype(np.float32)
    lap = 4 * f[1:-1, 1:-1] - f[:-2, 1:-1] - f[2:, 1:-1] - f[1:-1, :-2] - f[1:-1, 2:]
    return float(np.abs(lap).mean())


MODES = [
    ("fixed_seed", "", SequenceSettings(Mode.FIXED_SEED)),
    ("previous", "strength 0.6", SequenceSettings(Mode.PREVIOUS, previous_strength=0.6)),
    ("previous", "strength 0.3", SequenceSettings(Mode.PREVIOUS, previous_strength=0.3)),
    ("warp", "refresh 0.3", SequenceSettings(Mode.WARP, denoise=0.3)),
    ("warp", "refresh 0.15", SequenceSettings(Mode.WARP, denoise=0.15)),
    ("warp", "refresh 0", SequenceSettings(Mode.WARP, denoise=0.0)),
    (
        "keyframes",
        "every 4, refresh 0.3",
        SequenceSettings(Mode.KEYFRAMES, key_every=4, denoise=0.3),
    ),
    (
        "keyframes",
        "every 4, refresh 0.15",
        SequenceSettings(Mode.KEYFRAMES, key_every=4, denoise=0.15),
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "animation.json")
    ap.add_argument("--flows", type=Path, help="reuse captured scenes from this folder")
    ap.add_argument("--no-animatediff", dest="animatediff", action="store_false")
    ap.add_argument(
        "--scenes",
        nargs="+",
        help="only these scenes; their rows replace those scenes' rows in --json, if it exists",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dreamwire-bench-anim-") as tmp:
        flows = a.flows
        if flows is None:
            flows = Path(tmp) / "flows"
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "animation_scenes.py"),
                    str(flows),
                    "--size",
                    str(a.size),
                    "--frames",
                    str(a.frames),
                    *(["--scenes", *a.scenes] if a.scenes else []),
                ],
                check=True,
                capture_output=True,
            )
        scenes = a.scenes or sorted(p.name for p in flows.iterdir() if p.is_dir())
        rows = []
        for scene in scenes:
            frames = flow_frames(flows / scene)
            for i, (mode, setting, s) in enumerate(MODES):
                out = Path(tmp) / "out" / scene / str(i)
                err, regen, cost, detail, secs, now = run_mode(flows / scene, out, frames, s)
                rows.append(Row(scene, mode, setting, err, regen, cost, detail, secs, now))
                print(
                    f"{scene:8s} {mode:10s} {setting:22s} error {err:6.2f} ({now:6.2f})  "
                    f"regenerated {regen:5.3f}  cost {cost:5.2f}  detail {detail:4.2f}  "
                    f"{secs:5.2f} s",
                    flush=True,
                )
        columns = animatediff_columns(flows, scenes, Path(tmp)) if a.animatediff else {}
    fixed = {r.scene: r.error for r in rows if r.mode == "fixed_seed"}
    result = {
        "size": a.size,
        "frames": a.frames,
        "amplitude": AMPLITUDE,
        "rows": [
            {**r.__dict__, "fixed_over_this": fixed[r.scene] / max(r.error, 1e-9)} for r in rows
        ],
        "animatediff": {
            scene: {**c.__dict__, "error_ratio": c.error_ratio, "cost_ratio": c.cost_ratio}
            for scene, c in columns.items()
        },
    }
    if a.scenes and a.json.exists():
        result = merged(json.loads(a.json.read_text()), result, set(a.scenes))
    a.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.json}")


def merged(old: dict, new: dict, scenes: set[str]) -> dict:
    """An earlier run's results with `scenes`' rows and columns replaced by `new`'s (a run of
    those scenes alone, at the same size and frame count)."""
    for key in ("size", "frames", "amplitude"):
        if old[key] != new[key]:
            raise SystemExit(f"cannot merge: {key} {new[key]} here, {old[key]} in the file")
    rows = [r for r in old["rows"] if r["scene"] not in scenes] + new["rows"]
    columns = {k: v for k, v in old["animatediff"].items() if k not in scenes}
    return {**new, "rows": rows, "animatediff": {**columns, **new["animatediff"]}}


def animatediff_columns(flows: Path, scenes: list[str], tmp: Path) -> dict:
    """Each scene's AnimateDiff column on the tiny model (animatediff_column.py)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import animatediff_column as adc

    engine = adc.tiny_engine(tmp / "tiny-models")
    out = {}
    for scene in scenes:
        c = out[scene] = adc.run(engine, flows / scene, flow_frames(flows / scene))
        print(
            f"{scene:8s} animatediff (tiny sd1)  error fixed {c.fixed_error:6.2f} / "
            f"animatediff {c.animatediff_error:6.2f} = {c.error_ratio:4.2f}x  seconds per "
            f"frame {c.animatediff_seconds:5.2f} / {c.fixed_seconds:5.2f} = {c.cost_ratio:4.2f}x",
            flush=True,
        )
    return out


if __name__ == "__main__":
    main()
