"""A Job from a host panel: the prompt and sampling settings every panel has (Blender's
N-panel, Krita's docker, their upscale actions) turned into Job fields the same way, in one
place, with the action's own fields on top.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from typing import Any, Protocol

from .job import Job


class PanelSampling(Protocol):
    """What a panel's settings object has (blender_addon GenerationSettings, Krita Params)."""

    prompt: str
    negative: str
    model: str  # "" = the backend's default
    sampler: str
    steps: int
    cfg: float
    seed: int


def panel_job(panel: PanelSampling, **fields: Any) -> Job:
    """A Job with the panel's prompt, model and sampling, an artist's (interactive)
    priority, and `fields` (size, pictures, controls, tag ...; they win over the panel's).
    Not validated: the caller may still change it, then validates."""
    base: dict[str, Any] = {
        "prompt": str(panel.prompt),
        "negative": str(panel.negative),
        "model": str(panel.model),
        "sampler": str(panel.sampler),
        "steps": int(panel.steps),
        "cfg": float(panel.cfg),
        "seed": int(panel.seed),
        "priority": "interactive",
    }
    base.update(fields)
    return Job(**base)
