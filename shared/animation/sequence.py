"""The animation render modes as one generator of generation requests, shared by the
Blender add-on, the CLI and the bench: the caller turns each `Request` into a job for its
generator (a backend, or a stand-in) and sends the picture back.

    gen = run(frames, settings, io)
    request = next(gen)
    while True:
        request = gen.send(generate(request))   # StopIteration.value: the FrameReports

`io` (FrameIO) supplies each frame's motion and the frames already made (a stopped render
resumes: a frame on disk is loaded, not made again) and stores each finished frame.

Modes:
  fixed_seed   every frame generated alone with the same seed.
  previous     img2img of the previous output at `previous_strength`.
  warp         the previous output warped into this frame with the true motion; pixels the
               motion cannot carry (occlusion.reliable) are inpainted at full strength, then
               the whole frame gets a light img2img at `denoise` to restore the detail
               resampling softens (denoise 0: no such pass).
  keyframes    keyframes (propagate.keyframes) are made like warp frames from the keyframe
               before them (carried over the frames between); the frames between are
               blended from both keyframes and only what neither shows is inpainted
               (with run's `groups`, those inpaints come together as one RequestGroup).
  animatediff  every frame in one batch job through a motion module (batch.py); it is no
               request-by-request mode, so `run` refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from enum import Enum
from itertools import pairwise
from typing import Protocol

import numpy as np

from .motion import FrameMotion
from .occlusion import OcclusionSettings, grow, reliable, to_mask
from .propagate import blend, keyframes
from .warp import Carry


class Mode(str, Enum):
    FIXED_SEED = "fixed_seed"
    PREVIOUS = "previous"
    WARP = "warp"
    KEYFRAMES = "keyframes"
    ANIMATEDIFF = "animatediff"


MOTION_MODES = (Mode.WARP, Mode.KEYFRAMES)


@dataclass(frozen=True)
class SequenceSettings:
    mode: Mode = Mode.FIXED_SEED
    previous_strength: float = 0.6
    denoise: float = 0.15
    occlusion: OcclusionSettings = field(default_factory=OcclusionSettings)
    key_every: int = 8
    key_marked: tuple[int, ...] = ()
    # animatediff: the motion module and its context windows (shared/animatediff.py).
    motion_module: str = ""
    context_length: int = 16
    context_stride: int = 4


def settings(
    mode: str,
    previous_strength: float,
    denoise: float,
    grow: int,
    key_every: int,
    key_marked: tuple[int, ...] = (),
    motion_module: str = "",
    context_length: int = 16,
    context_stride: int = 4,
) -> SequenceSettings:
    """The settings from a host's flat fields (the N-panel's properties, the CLI's flags)."""
    return SequenceSettings(
        mode=Mode(mode),
        previous_strength=previous_strength,
        denoise=denoise,
        occlusion=OcclusionSettings(grow=grow),
        key_every=key_every,
        key_marked=tuple(key_marked),
        motion_module=motion_module,
        context_length=context_length,
        context_stride=context_stride,
    )


def resume_fingerprint(s: SequenceSettings) -> dict:
    """What of a motion mode's settings decides its frames, for a host's resume
    fingerprint (blender_addon/core/animation.plan): frames made with other occlusion
    tests or keys are not this render's, so a stopped render with other values does not
    resume (every OcclusionSettings field counts, the ones the artist cannot set too: a
    later default changes what the masks regenerate)."""
    if s.mode not in MOTION_MODES:
        return {}
    out = {"motion": [s.mode.value, s.denoise, s.occlusion.grow], "occlusion": asdict(s.occlusion)}
    if s.mode is Mode.KEYFRAMES:
        out["keys"] = [s.key_every, list(s.key_marked)]
    return out


@dataclass
class Request:
    frame: int
    init: np.ndarray | None = None  # H x W x 3 uint8; None: txt2img
    strength: float | None = None
    mask: np.ndarray | None = None  # H x W uint8, 255 = generate at full strength

    @property
    def kind(self) -> str:
        if self.init is None:
            return "txt2img"
        return "inpaint" if self.mask is not None else "img2img"


@dataclass
class FrameReport:
    frame: int
    source: str  # "on disk", "generated", "warped" or "propagated"
    regenerated: float = 0.0  # share of pixels generated from scratch
    cost: float = 0.0  # denoising steps run, as a share of one txt2img of the frame


@dataclass
class RequestGroup:
    """Requests that need nothing from each other: the in-betweens of two finished
    keyframes, each blended from both keys and needing only its own inpaint (run's
    `groups=True`). A driver may make them in any order or side by side (one FanOut over
    them: independent.group_fanout), hands each picture to `deliver` as it comes, then
    resumes the generator with None. Frames are saved in frame order whatever order the
    pictures come in (a frame waits for those before it), so the propagated frames still
    reach the disk one after another, and a stop keeps every frame up to the first one
    still missing (FanOut hands back in order what finished before it stopped)."""

    requests: list[Request]
    deliver: Callable[[int, np.ndarray], None]


class FrameIO(Protocol):
    def motion(self, frame: int) -> FrameMotion: ...

    def load(self, frame: int) -> np.ndarray | None: ...

    def save(self, frame: int, image: np.ndarray) -> None: ...


Run = Generator[Request | RequestGroup, np.ndarray | None, list[FrameReport]]


def run(frames: list[int], s: SequenceSettings, io: FrameIO, groups: bool = False) -> Run:
    """The requests of a render, one at a time; with `groups`, the keyframes mode hands out
    the in-betweens of two finished keyframes together as a RequestGroup (a driver that
    can spread them over several workers asks for this; the others see only Requests)."""
    if s.mode is Mode.ANIMATEDIFF:
        raise ValueError("animatediff renders the frames as one batch job (animation.batch)")
    if s.mode in MOTION_MODES and any(b - a != 1 for a, b in pairwise(frames)):
        raise ValueError("the motion modes need every frame of the range (frame step 1)")
    if s.mode is Mode.KEYFRAMES:
        return (yield from _keyframes(frames, s, io, groups))
    return (yield from _frame_by_frame(frames, s, io))


def _frame_by_frame(frames: list[int], s: SequenceSettings, io: FrameIO) -> Run:
    reports = []
    previous = None
    for i, f in enumerate(frames):
        image = io.load(f)
        if image is not None:
            reports.append(FrameReport(f, "on disk"))
        elif s.mode is Mode.PREVIOUS and previous is not None:
            image = yield Request(f, previous, s.previous_strength)
            io.save(f, image)
            reports.append(FrameReport(f, "generated", 0.0, s.previous_strength))
        elif s.mode is Mode.WARP and previous is not None:
            here, there = io.motion(f), io.motion(frames[i - 1])
            carry = Carry.identity(*here.shape).step(
                here.to_prev, reliable(here, there, True, s.occlusion)
            )
            image, report = yield from _from_carry(f, previous, carry, here, s)
            io.save(f, image)
            reports.append(report)
        else:
            image = yield Request(f)
            io.save(f, image)
            reports.append(FrameReport(f, "generated", 1.0, 1.0))
        previous = image
    return reports


def _from_carry(
    f: int, source: np.ndarray, carry: Carry, surface: FrameMotion, s: SequenceSettings
):
    """Frame f from a source picture carried to it: inpaint what the carry cannot trust,
    then the light refresh over the whole frame."""
    image = np.clip(np.rint(carry.apply(source)), 0, 255).astype(np.uint8)
    o = s.occlusion
    regenerate = grow(~carry.valid, o.grow, surface, o.edge_share)
    cost = 0.0
    if regenerate.any():
        image = yield Request(f, image, 1.0, to_mask(regenerate))
        cost += 1.0
    if s.denoise > 0:
        image = yield Request(f, image, s.denoise)
        cost += s.denoise
    return image, FrameReport(f, "warped", float(regenerate.mean()), cost)


def _carries(frames: list[int], io: FrameIO, s: SequenceSettings, forward: bool) -> list[Carry]:
    """Carries from frames[0] (forward) or frames[-1] (backward) to every frame of the
    segment, in the segment's order."""
    order = frames if forward else frames[::-1]
    motions = {order[0]: io.motion(order[0])}
    carries = [Carry.identity(*motions[order[0]].shape)]
    for prev_f, f in pairwise(order):
        here = motions[f] = io.motion(f)
        there = motions.pop(prev_f)
        flow = here.to_prev if forward else here.to_next
        carries.append(carries[-1].step(flow, reliable(here, there, forward, s.occlusion)))
    return carries if forward else carries[::-1]


def _keyframes(frames: list[int], s: SequenceSettings, io: FrameIO, groups: bool) -> Run:
    keys = keyframes(frames, s.key_every, s.key_marked)
    reports = {}
    first = keys[0]
    key_image = io.load(first)
    if key_image is None:
        key_image = yield Request(first)
        io.save(first, key_image)
        reports[first] = FrameReport(first, "generated", 1.0, 1.0)
    else:
        reports[first] = FrameReport(first, "on disk")
    for a, b in pairwise(keys):
        segment = frames[frames.index(a) : frames.index(b) + 1]
        between = segment[1:-1]
        todo = [f for f in between if io.load(f) is None]
        b_image = io.load(b)
        if b_image is None or todo:
            forward = _carries(segment, io, s, True)
        if b_image is None:
            b_image, report = yield from _from_carry(b, key_image, forward[-1], io.motion(b), s)
            io.save(b, b_image)
            reports[b] = report
        else:
            reports[b] = FrameReport(b, "on disk")
        backward = _carries(segment, io, s, False) if todo else []
        saver = _InOrder(io, todo)
        requests = []
        for i, f in enumerate(between, start=1):
            if f not in todo:
                reports[f] = FrameReport(f, "on disk")
                continue
            image, unseen = blend(key_image, forward[i], b_image, backward[i], f, a, b)
            o = s.occlusion
            regenerate = (
                grow(unseen, o.grow, io.motion(f), o.edge_share) if unseen.any() else unseen
            )
            if regenerate.any():
                requests.append(Request(f, image, 1.0, to_mask(regenerate)))
            else:
                saver.put(f, image)
            cost = 1.0 if regenerate.any() else 0.0
            reports[f] = FrameReport(f, "propagated", float(regenerate.mean()), cost)
        if groups and requests:
            yield RequestGroup(requests, saver.put)
            if saver.waiting:
                missing = sorted(saver.waiting)
                raise ValueError(f"the driver resumed before delivering frames {missing}")
        else:
            for request in requests:
                saver.put(request.frame, (yield request))
        key_image = b_image
    return [reports[f] for f in frames]


class _InOrder:
    """Saves frames in `order`, holding one back until every frame before it is here."""

    def __init__(self, io: FrameIO, order: list[int]) -> None:
        self.io = io
        self.order = list(order)
        self.held: dict[int, np.ndarray] = {}
        self.saved = 0

    @property
    def waiting(self) -> list[int]:
        return self.order[self.saved :]

    def put(self, frame: int, image: np.ndarray) -> None:
        if frame not in self.waiting:
            raise ValueError(f"frame {frame} is not one this group waits for")
        self.held[frame] = image
        while self.saved < len(self.order) and self.order[self.saved] in self.held:
            f = self.order[self.saved]
            self.io.save(f, self.held.pop(f))
            self.saved += 1
