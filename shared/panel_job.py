"""A Job from a host panel: the prompt and sampling settings every panel has (Blender's
N-panel, Krita's docker, their upscale actions) turned into Job fields the same way, in one
place, with the action's own fields on top.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from .families import ModelFamily
from .family_support import skip_layer_guidance_refusal
from .job import Job


class PanelSampling(Protocol):
    """What a panel's settings object has (blender_addon GenerationSettings, Krita Params)."""

    prompt: str
    negative: str
    model: str  # "" = the backend's default
    sampler: str
    steps: int
    cfg: float
    distilled_cfg: float | None  # sent only for a family that takes one (Flux dev)
    seed: int
    # A1111's CFG Rescale φ and SD3.5's skip-layer guidance scale: sent only where the
    # family supports them (the panel shows them there) and, SLG, where the job can run it.
    cfg_rescale: float
    slg_scale: float


def distilled_cfg(panel: PanelSampling, family: ModelFamily | None) -> float | None:
    """Job.distilled_cfg: the panel's Distilled CFG for a family that takes one (its
    defaults have one), else None (other families ignore it; the panel hides it)."""
    if family is None or family.defaults.distilled_cfg is None or panel.distilled_cfg is None:
        return None  # None: the model's own default (Flux Fill and Kontext differ from dev)
    return float(panel.distilled_cfg)


def guidance_options(panel: PanelSampling, supports: Collection[str]) -> dict[str, float]:
    """Job.cfg_rescale and Job.slg_scale as the panel sets them, each only where the family
    supports it (0.0 elsewhere: off, and not sent)."""
    return {
        "cfg_rescale": float(panel.cfg_rescale) if "cfg_rescale" in supports else 0.0,
        "slg_scale": float(panel.slg_scale) if "skip_layer_guidance" in supports else 0.0,
    }


def panel_job(
    panel: PanelSampling,
    family: ModelFamily | None = None,
    supports: Collection[str] = (),
    **fields: Any,
) -> Job:
    """A Job with the panel's prompt, model and sampling, an artist's (interactive)
    priority, and `fields` (size, pictures, controls, tag ...; they win over the panel's).
    `family`: the model's (the backend's description), for the settings only some
    families take; `supports`: its features (FamilyInfo.supports), for CFG rescale and
    skip-layer guidance. Not validated: the caller may still change it, then validates."""
    base: dict[str, Any] = {
        "prompt": str(panel.prompt),
        "negative": str(panel.negative),
        "model": str(panel.model),
        "sampler": str(panel.sampler),
        "steps": int(panel.steps),
        "cfg": float(panel.cfg),
        "distilled_cfg": distilled_cfg(panel, family),
        "seed": int(panel.seed),
        "priority": "interactive",
        **guidance_options(panel, supports),
    }
    base.update(fields)
    job = Job(**base)
    if skip_layer_guidance_refusal(job):  # an img2img, inpaint or two-pass job: not there
        job.slg_scale = 0.0
    return job
