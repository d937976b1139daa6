"""SD3's conditioning for a pass, in the shape diffusers' StableDiffusion3 pipelines take.

The text is encoded by backend/sd3_encoding.py. The job's CFG is the pipelines' own
classifier-free guidance (`guidance_scale`): diffusers runs the negative prompt only above
1, so at CFG 1 (Large Turbo) the negative prompt is not encoded at all.

Skip-layer guidance (Job.slg_scale) is diffusers' own (StableDiffusion3Pipeline's
skip_guidance_layers): the layers are the checkpoint's, from the catalog (Stability's
SD3.5 card and ComfyUI's SkipLayerGuidanceSD3: 7, 8, 9), over diffusers' default window of
the steps (1 % to 20 %).
"""

from __future__ import annotations

from typing import Any

from dreamwire import catalog
from dreamwire.backend.sd3_encoding import Sd3Conditioning, encode

from .prompting_clip_t5 import FixedPlan


class Sd3Plan(FixedPlan):
    """One SD3 pass's conditioning."""

    def __init__(
        self, cond: Sd3Conditioning, uncond: Sd3Conditioning | None, skip_layers: list[int]
    ):
        self.cond = cond
        self.uncond = uncond  # None: CFG is 1, no negative pass
        self.skip_layers = skip_layers  # the checkpoint's layers for skip-layer guidance

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_embeds": self.cond.sequence,
            "pooled_prompt_embeds": self.cond.pooled,
            "guidance_scale": job.cfg,
        }
        if self.uncond is not None:
            out["negative_prompt_embeds"] = self.uncond.sequence
            out["negative_pooled_prompt_embeds"] = self.uncond.pooled
        if job.slg_scale > 0:  # txt2img above CFG 1 only (engine/family_support.py)
            out["skip_guidance_layers"] = self.skip_layers
            out["skip_layer_guidance_scale"] = job.slg_scale
        return out


def skip_layers(arch: str) -> list[int]:
    """The transformer layers skip-layer guidance skips on a checkpoint of `arch`."""
    return list(catalog.arch_info(arch).get("skip_layers", ())) if arch in catalog.archs() else []


def encode_sd3(pipe, prompt: str, negative: str, job, arch: str) -> Sd3Plan:
    cond = encode(pipe, prompt)
    uncond = encode(pipe, negative) if job.cfg > 1.0 else None
    return Sd3Plan(cond, uncond, skip_layers(arch))
