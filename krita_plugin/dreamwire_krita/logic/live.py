"""Live mode: regenerate a quick img2img preview whenever the drawing changes.

Krita AI Diffusion's Live workspace (ai_diffusion/model.py LiveWorkspace) polls the
canvas, compares the whole workflow input with the last one it sent, and enqueues a
"live preview" job with its own strength (0.3), the style's live sampler (LCM, 6 steps,
CFG 1.8) and the model's seed, which stays put until the artist asks for a new one, so
only the drawing changes the picture. Here the same, with no Qt or Krita in it:

- `fingerprint` reduces what the job depends on (small thumbnails of the layers, the
  selection, the parameters) to one hash, leaving out the preview layer itself so the
  result never feeds back into the next job;
- `LiveState` waits for the fingerprint to hold still for a moment (debounce) before it
  asks for a job, and says which running job the new one supersedes, to be cancelled;
- `live_sampling` and `live_job` turn a refine job into a live one.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dreamwire.shared import families
from dreamwire.shared.job import Job, LoraRef

# Krita AI Diffusion's defaults: LiveWorkspace.strength, and the style's live_sampler,
# live_sampler_steps and live_cfg_scale.
LIVE_STRENGTH = 0.3
LCM_SAMPLER = "LCM"
LCM_STEPS = 6
LCM_CFG = 1.8
# Without an LCM model or LoRA an ordinary sampler needs more steps to look like anything
# (img2img runs about steps x strength of them: 3 at the default strength).
PLAIN_STEPS = 10
DEBOUNCE_S = 0.4  # the canvas must hold still this long before a job goes out
# The backend's live class (PROTOCOL.md, "Live jobs"): ahead of every other job, and it
# replaces this client's previous live job there. A backend whose welcome does not list it
# in `priorities` gets "interactive", and the controller cancels superseded jobs itself.
PRIORITY = "live"
FALLBACK_PRIORITY = "interactive"
PREVIEW_LAYER = "Live preview"
SEED_MAX = 2**31 - 1


def new_seed(rng: random.Random | None = None) -> int:
    return (rng or random).randint(0, SEED_MAX)


# -- what the job depends on ----------------------------------------------------------


@dataclass(frozen=True)
class LayerSample:
    """One top-level layer as the fingerprint sees it: how it blends, and a small
    thumbnail of its pixels (a group's thumbnail shows its contents)."""

    node_id: str
    visible: bool
    opacity: int
    blend: str
    pixels: bytes


def fingerprint(layers: Iterable[LayerSample], preview_id: str | None, extra: object = ()) -> str:
    """A hash of everything a live job reads: the layers except the preview layer, and
    `extra` (selection, parameters, control marks: anything JSON can write)."""
    h = hashlib.blake2b(digest_size=16)
    for layer in layers:
        if preview_id is not None and layer.node_id == preview_id:
            continue
        h.update(f"{layer.node_id}|{layer.visible}|{layer.opacity}|{layer.blend}|".encode())
        h.update(hashlib.blake2b(layer.pixels, digest_size=16).digest())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


# -- when to send -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    submit: bool = False
    cancel: str | None = None  # the live job the new one supersedes


NOTHING = Decision()


@dataclass
class LiveState:
    """Change -> wait until it holds still for `debounce` seconds -> one job.

    `observe` is called on every timer tick with the current fingerprint; the controller
    submits when told to and reports the job id back with `submitted`, and results with
    `finished`. A job whose input has changed since is superseded: the decision names it
    for cancelling, and its result, should it still arrive, is not shown (`is_current`).
    """

    clock: Callable[[], float] = time.monotonic
    debounce: float = DEBOUNCE_S
    seen: str | None = None  # the fingerprint last observed
    changed_at: float = 0.0
    sent: str | None = None  # the fingerprint of the newest submitted job
    job_id: str | None = None  # the newest live job, while queued or running
    superseded: set[str] = field(default_factory=set)

    def observe(self, fp: str) -> Decision:
        now = self.clock()
        if fp != self.seen:
            self.seen, self.changed_at = fp, now
            return NOTHING
        if fp == self.sent or now - self.changed_at < self.debounce:
            return NOTHING
        return Decision(submit=True, cancel=self.job_id)

    def submitted(self, job_id: str, fp: str) -> None:
        if self.job_id is not None:
            self.superseded.add(self.job_id)
        self.job_id, self.sent = job_id, fp

    def failed(self, fp: str) -> None:
        """The job could not be sent: do not try again until the input changes."""
        self.sent = fp

    def is_current(self, job_id: str) -> bool:
        return job_id == self.job_id

    def finished(self, job_id: str) -> bool:
        """A live job ended (result, error or cancel); True when its result is the one
        to show."""
        self.superseded.discard(job_id)
        if job_id != self.job_id:
            return False
        self.job_id = None
        return True

    def reset(self) -> None:
        """Live switched off: the next switch-on starts a fresh preview."""
        self.seen = self.sent = self.job_id = None
        self.superseded.clear()

    def invalidate(self) -> None:
        """Send again once the input holds still, even if it has not changed (new seed)."""
        self.sent = None


# -- what to send -----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveSampling:
    sampler: str
    steps: int
    cfg: float
    loras: tuple[str, ...] = ()
    note: str = ""
    priority: str = PRIORITY


def live_priority(welcome) -> str:
    """ "live" where the backend's welcome lists it among its `priorities`, else the best
    class every backend knows."""
    listed = welcome.priorities if welcome is not None else []
    return PRIORITY if PRIORITY in listed else FALLBACK_PRIORITY


def _names(items) -> list[str]:
    return [str(i.get("name", i)) if isinstance(i, dict) else str(i) for i in items or []]


def _is_lcm(name: str) -> bool:
    return "lcm" in name.lower()


def lcm_lora(loras: Iterable[str], family: str) -> str | None:
    """The LCM LoRA for the model's family among the backend's LoRAs (lcm-lora-sdv1-5,
    lcm-lora-sdxl, ...), told by the family's name hints (shared/families.py); None when
    there is none."""
    want = families.family(family).key
    for name in loras:
        if _is_lcm(name) and families.guess_from_name(name) == want:
            return name
    return None


def live_sampling(sampler: str, cfg: float, model: str, welcome, family: str) -> LiveSampling:
    """LCM with few steps where the backend can run it (an LCM model, or an LCM LoRA for
    the model's family), as Krita AI Diffusion's live sampler; else the panel's sampler
    with a few more steps and its CFG."""
    samplers = _names(getattr(welcome, "samplers", None))
    priority = live_priority(welcome)
    if LCM_SAMPLER in samplers:
        if _is_lcm(model):
            return LiveSampling(LCM_SAMPLER, LCM_STEPS, LCM_CFG, (), "LCM model", priority)
        lora = lcm_lora(_names(getattr(welcome, "loras", None)), family)
        if lora is not None:
            note = f"LCM LoRA {lora}"
            return LiveSampling(LCM_SAMPLER, LCM_STEPS, LCM_CFG, (lora,), note, priority)
    return LiveSampling(sampler, PLAIN_STEPS, cfg, (), "no LCM LoRA: slower previews", priority)


def live_job(job: Job, sampling: LiveSampling, strength: float, seed: int) -> Job:
    """The refine job the docker built (canvas, selection, control layers, regions), made
    a live one: few steps, fixed seed, first in the backend's queue (`sampling.priority`),
    one image."""
    job.sampler = sampling.sampler
    job.steps = int(sampling.steps)
    job.cfg = float(sampling.cfg)
    job.strength = float(strength)
    job.seed = int(seed)
    job.batch = 1
    job.hires = None
    job.loras = [lr for lr in job.loras if lr.name not in sampling.loras] + [
        LoraRef(name) for name in sampling.loras
    ]
    job.priority = sampling.priority
    job.preview_every = 0  # the result itself is the preview
    job.tag = "krita:live"
    return job.validate()
