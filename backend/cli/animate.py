"""`dreamwire animate FLOWS --out FOLDER`: an animation from a folder of flow files (one
`frame_NNNN.npz` per frame: true motion to the previous and next frames, optionally depth
and object ids; shared/animation/motion.py describes the format, and Blender's add-on
writes the same through its capture), generated frame by frame with `generate`'s job flags
in one of the render modes (shared/animation/sequence.py): fixed_seed, previous, warp,
keyframes, or animatediff: every frame in one batch job through a motion module
(--motion-module; --context-length/--context-stride are FreeNoise's windows), with
--depth-control taken by the ControlNet --depth-model on every frame. Frames go to the output folder as `frame_NNNN.png`; a run stopped part way
resumes from the frames already there (delete them to start over). Every frame uses one
seed (--seed, else one chosen and printed).

With --server, fixed_seed's frames are independent jobs (shared/animation/independent.py):
one in flight per worker the backend's welcome lists, each saved as it comes back, in
order; so are keyframes' in-betweens of two finished keys (the keys themselves one after
another). The other modes make a frame from the one before it, so they go one job at a
time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

from dreamwire.backend.cli import generate
from dreamwire.shared import events as ev
from dreamwire.shared.animation import batch, independent
from dreamwire.shared.animation.folder import FolderFrames, flow_frames
from dreamwire.shared.animation.motion import MotionError
from dreamwire.shared.animation.sequence import (
    FrameReport,
    Mode,
    Request,
    RequestGroup,
    SequenceSettings,
    run,
    settings,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.fanout import FanOut, run_blocking, worker_limit
from dreamwire.shared.imaging.depth import depth_image
from dreamwire.shared.job import ControlUnit, Job, new_job_id


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "animate", help="an animation from flow files (warp and inpaint, keyframes, ...)"
    )
    p.add_argument("flows", type=Path, help="folder of frame_NNNN.npz flow files")
    generate.add_job_arguments(p)
    p.add_argument(
        "--animation", choices=[m.value for m in Mode], default=Mode.WARP.value, help="render mode"
    )
    d = SequenceSettings()
    p.add_argument("--previous-strength", type=float, default=d.previous_strength)
    p.add_argument(
        "--refresh", type=float, default=d.denoise, help="denoise of the light pass over warps"
    )
    p.add_argument("--mask-grow", type=int, default=d.occlusion.grow, help="pixels")
    p.add_argument("--key-every", type=int, default=d.key_every)
    p.add_argument("--keys", default="", help="extra keyframes, e.g. 1,17,30")
    p.add_argument(
        "--depth-control",
        type=float,
        nargs="?",
        const=1.0,
        default=None,
        metavar="WEIGHT",
        help="a depth ControlNet per frame from the flow files' depth",
    )
    p.add_argument("--motion-module", default="", help="animatediff: the motion module's name")
    p.add_argument("--context-length", type=int, default=d.context_length, help="animatediff")
    p.add_argument("--context-stride", type=int, default=d.context_stride, help="animatediff")
    p.add_argument(
        "--depth-model",
        default="",
        help="animatediff: the depth ControlNet for --depth-control (default: the model's)",
    )
    p.set_defaults(func=main)


def _settings(args: argparse.Namespace) -> SequenceSettings:
    try:
        keys = tuple(int(k) for k in args.keys.replace(" ", "").split(",") if k)
    except ValueError:
        msg = f"--keys: {args.keys!r} is not frame numbers"
        raise DreamwireError(ErrorCode.INVALID_JOB, msg) from None
    return settings(
        args.animation,
        args.previous_strength,
        args.refresh,
        args.mask_grow,
        args.key_every,
        keys,
        args.motion_module,
        args.context_length,
        args.context_stride,
    )


def frame_job(base: Job, req: Request, io: FolderFrames, depth_weight: float | None) -> Job:
    """The base job made into one request's job (a new id: each is a job of its own)."""
    controls = list(base.controls)
    if depth_weight is not None:
        z = io.motion(req.frame).depth
        if z is None:
            raise MotionError(f"--depth-control: frame {req.frame}'s flow file has no depth")
        controls.append(ControlUnit(type="depth", image=depth_image(z), weight=depth_weight))
    job = dataclasses.replace(
        base,
        job_id=new_job_id(),
        mode=None,  # validate() reads it from the request: txt2img, img2img or inpaint
        tag=f"frame {req.frame}",
        init_image=req.init,
        strength=base.strength if req.strength is None else req.strength,
        mask=req.mask,
        mask_blur=0 if req.mask is not None else base.mask_blur,
        controls=controls,
    )
    return job.validate()


def _requests(steps, base: Job, io: FolderFrames, depth_weight, run_job, bar, run_group=None):
    """The frame-by-frame modes: each request as a job, its picture sent back; a
    RequestGroup (keyframes' in-betweens, asked for with --server) through `run_group`."""
    try:
        request = next(steps)
        while True:
            if isinstance(request, RequestGroup):
                run_group(request)
                request = steps.send(None)
                continue
            job = frame_job(base, request, io, depth_weight)
            result = run_job(job, bar)
            request = steps.send(result.images[0].image[..., :3])
    except StopIteration as stop:
        return stop.value


def _fan_out(frames: list[int], base: Job, io: FolderFrames, args, bar) -> list[FrameReport]:
    """fixed_seed through --server: every frame not on disk a `batch` job of its own, as
    many in flight as the backend has workers. A failed frame, a bad flow file or Ctrl-C
    cancels the jobs in flight; the frames already back are saved (in order) first."""
    client = generate.server_client(args)
    try:
        limit = worker_limit(client.connect_wait(30.0))
        fan = independent.frames_fanout(
            frames, io, lambda req: frame_job(base, req, io, args.depth_control), limit
        )
        # Each frame gets the hour a one-job-at-a-time run would give it.
        _drive(client, fan, 3600.0 * max(1, len(frames)), bar)
    finally:
        client.close()
    return independent.reports(fan)


def _grouped(steps, base: Job, io: FolderFrames, args, bar) -> list[FrameReport]:
    """keyframes through --server: the keys one job at a time, the in-betweens of two
    finished keys as one fan-out (as many in flight as the backend has workers, saved in
    frame order as they come back; a failure or Ctrl-C cancels the rest, as in _fan_out)."""
    client = generate.server_client(args)
    try:
        limit = worker_limit(client.connect_wait(30.0))

        def make(req: Request) -> Job:
            return frame_job(base, req, io, args.depth_control)

        def run_group(group) -> None:
            fan = independent.group_fanout(group, make, limit)
            _drive(client, fan, 3600.0 * len(group.requests), bar)

        def run_job(job: Job, on_progress):
            return client.run(job, timeout=3600.0, on_progress=on_progress)

        return _requests(steps, base, io, args.depth_control, run_job, bar, run_group)
    finally:
        client.close()


def _drive(client, fan: FanOut, timeout: float, bar) -> None:
    """run_blocking with the bar fed from the pieces' progress; the jobs in flight are
    cancelled when it fails or is interrupted."""

    def show(e) -> None:
        if isinstance(e, ev.ProgressEvent):
            bar(e.progress)

    try:
        run_blocking(client, fan, timeout, watch=show)
    except BaseException:
        _cancel(client, fan)
        raise


def _cancel(client, fan: FanOut[int], within: float = 5.0) -> None:
    """Cancel the jobs in flight and wait (briefly) for the backend to answer: the client's
    socket drops unsent messages when it closes, and a job whose cancel never arrived would
    run on for nobody."""
    asked = set(fan.in_flight)
    fan.cancel(client)
    deadline = time.monotonic() + within
    while asked and time.monotonic() < deadline:
        for e in client.wait(0.2):
            if isinstance(e, ev.Cancelled | ev.ResultEvent | ev.ErrorEvent):
                asked.discard(getattr(e, "job_id", None))


def _one_by_one(steps, frames: list[int], base: Job, io: FolderFrames, args, bar):
    """The animatediff job, or the requests one after another (in this process, or
    through --server's queue): the FrameReports."""
    run_job, close = generate.job_runner(args)
    try:
        if not isinstance(steps, Job):
            return _requests(steps, base, io, args.depth_control, run_job, bar)
        if steps.animatediff is None:  # every frame on disk
            return [FrameReport(f, "on disk") for f in frames]
        return batch.store(frames, [i.image for i in run_job(steps, bar).images], io)
    finally:
        close()


def _batch(base: Job, frames: list[int], s: SequenceSettings, io: FolderFrames, args) -> Job:
    """The animatediff job over every frame; a job without settings when all are on disk."""
    if not batch.missing(frames, io):
        return dataclasses.replace(base, animatediff=None)
    depth = None
    if args.depth_control is not None:
        depth = batch.DepthControl(args.depth_model, args.depth_control)
    return batch.batch_job(base, frames, s, io, depth)


def main(args: argparse.Namespace) -> int:
    if not args.flows.is_dir():
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{args.flows} is not a folder")
    frames = flow_frames(args.flows)
    if not frames:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{args.flows} holds no frame_NNNN.npz files")
    s = _settings(args)
    args = generate.model_from_path(args)
    out = args.out or Path("out") / "animation"
    io = FolderFrames(args.flows, out)
    try:
        h, w = io.motion(frames[0]).shape
        seed = args.seed if args.seed >= 0 else random.SystemRandom().randrange(2**32 - 1)
        base = generate.build_job(
            argparse.Namespace(**{**vars(args), "width": w, "height": h, "seed": seed}),
            generate.model_family(args),
        )
        if s.mode is Mode.ANIMATEDIFF:
            steps = _batch(base, frames, s, io, args)
        else:
            steps = run(frames, s, io, groups=bool(args.server))
    except (MotionError, ValueError) as exc:
        raise DreamwireError(ErrorCode.INVALID_JOB, str(exc)) from None
    if not args.json:
        print(f"{len(frames)} frames, seed {seed}, mode {s.mode.value}", file=sys.stderr)
    bar = generate.Bar(quiet=args.json)
    try:
        if s.mode is Mode.FIXED_SEED and args.server:
            reports = _fan_out(frames, base, io, args, bar)
        elif s.mode is Mode.KEYFRAMES and args.server:
            reports = _grouped(steps, base, io, args, bar)
        else:
            reports = _one_by_one(steps, frames, base, io, args, bar)
    except (MotionError, ValueError) as exc:
        raise DreamwireError(ErrorCode.INVALID_JOB, str(exc)) from None
    finally:
        bar.close()
    return _report(out, seed, s, reports, args.json)


def _report(out, seed: int, s: SequenceSettings, reports: list[FrameReport], as_json: bool) -> int:
    record = {
        "folder": str(Path(out).resolve()),
        "seed": seed,
        "mode": s.mode.value,
        "frames": [dataclasses.asdict(r) for r in reports],
    }
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        made = sum(r.source != "on disk" for r in reports)
        print(f"{made} frame(s) written to {record['folder']}")
    return 0
