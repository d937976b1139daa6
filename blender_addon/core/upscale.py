"""Upscale an image (the Image Editor's, or the texture Generate Texture made): the job,
the seamless default and where the result goes, without Blender.

As in Dream Textures' Upscale (operators/upscale.py): the result is a new image named
"<name> (Upscaled)" (an earlier one of that name is reused), shown in the image editors
instead of the source, and an image texture node that showed the source (here: the node
Dreamwire made on the active object's material) is pointed at it. The source stays as it
was, so the artist can compare and undo by switching back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamwire.shared.family_support import check_job, model_info, refusal
from dreamwire.shared.job import SEAMLESS_AXES, Job, Upscale
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.panel_job import panel_job
from dreamwire.shared.refine_upscaler import upscaler_choices

from .job_builder import GenerationSettings

# Krita AI Diffusion's upscale refine strength: new detail at the larger size without
# redrawing the picture (the backend's tile ControlNet holds it in place as well).
REFINE_STRENGTH = 0.3
# The image's custom property where Generate Texture records the axes a texture tiles on.
SEAMLESS_PROP = "dreamwire_seamless"
FROM_IMAGE = "AUTO"  # the panel's Seamless choice that defers to the image's record
SUFFIX = " (Upscaled)"


@dataclass
class UpscaleSettings:
    """The panel's Upscale controls."""

    upscaler: str = "Lanczos"
    factor: float = 2.0
    refine: bool = False
    strength: float = REFINE_STRENGTH
    seamless: str = FROM_IMAGE  # FROM_IMAGE or one of SEAMLESS_AXES


def seamless_for(choice: str, recorded) -> str:
    """The job's seamless axes: the panel's choice, or with FROM_IMAGE what the image
    recorded when Dreamwire generated it ("none" for any other image)."""
    if choice != FROM_IMAGE:
        return choice
    return recorded if recorded in SEAMLESS_AXES else "none"


def seamless_record(job_seamless: str) -> str | None:
    """What to record on a generated image (None: nothing, it does not tile)."""
    return job_seamless if job_seamless in SEAMLESS_AXES and job_seamless != "none" else None


def upscaled_name(name: str) -> str:
    """Dream Textures' name for the result; upscaling a result again does not stack
    suffixes ("Wall (Upscaled)" upscales into itself, at its new size)."""
    return name if name.endswith(SUFFIX) else name + SUFFIX


def build_upscale_job(
    pixels: np.ndarray, u: UpscaleSettings, s: GenerationSettings, seamless: str, tag: str = ""
) -> Job:
    """A validated upscale Job for an H x W x 3|4 uint8 image (top row first). A refine
    uses the panel's prompt, model, sampler, steps, CFG and seed at `u.strength`. What the
    model's family cannot run (a refine for Flux) is refused here with the backend's words."""
    job = panel_job(
        s,
        s.info.family,
        s.info.supports,
        mode=JobMode.UPSCALE,
        init_image=np.ascontiguousarray(pixels[..., :3]),
        strength=float(u.strength),
        upscale=Upscale(scale=float(u.factor), upscaler=u.upscaler, refine=bool(u.refine)),
        seamless=seamless,
        preview_every=int(s.preview_every),
        tag=tag,
    ).validate()
    return check_job(job, s.info)


def resize_alpha(alpha: np.ndarray, width: int, height: int, wrap: str = "none") -> np.ndarray:
    """The source's alpha at the result's size (bilinear, pixel centres; wrapping around
    along seamless axes), since the backend upscales RGB only."""

    def axis(n_in: int, n_out: int, wraps: bool):
        pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        lo = np.floor(pos).astype(int)
        t = pos - lo
        if wraps:
            return lo % n_in, (lo + 1) % n_in, t
        return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), t

    a = alpha.astype(np.float64)
    y0, y1, ty = axis(a.shape[0], height, wrap in ("y", "both"))
    x0, x1, tx = axis(a.shape[1], width, wrap in ("x", "both"))
    rows = a[y0] * (1 - ty)[:, None] + a[y1] * ty[:, None]
    out = rows[:, x0] * (1 - tx) + rows[:, x1] * tx
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def result_pixels(source: np.ndarray, result: np.ndarray, seamless: str) -> np.ndarray:
    """H' x W' x 4: the backend's RGB with the source's alpha carried over (opaque when
    the source was)."""
    h, w = result.shape[:2]
    rgb = result[..., :3]
    if source.ndim == 3 and source.shape[2] == 4 and source[..., 3].min() < 255:
        alpha = resize_alpha(source[..., 3], w, h, seamless)
    else:
        alpha = np.full((h, w), 255, np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=2)


def missing_for_upscale(u: UpscaleSettings, welcome, model: str = "") -> list[str]:
    """Plain sentences about what the backend lacks for this upscale with the panel's
    `model` ("" = the backend's default)."""
    if welcome is None:
        return []
    problems = []
    why = refusal(model_info(model, welcome), "refine_upscale") if u.refine else None
    if why:
        problems.append(why + "; switch Refine off.")
    names = upscaler_choices(welcome)
    if u.upscaler not in names:
        problems.append(
            f"The backend has no upscaler named '{u.upscaler}' (it has: {', '.join(names)})."
        )
    if u.refine and not getattr(welcome, "models", None):
        problems.append("Refine needs a Stable Diffusion model; the backend has none.")
    return problems
