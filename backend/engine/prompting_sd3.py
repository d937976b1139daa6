"""SD3's conditioning for a pass, in the shape diffusers' StableDiffusion3 pipelines take.

The text is encoded by backend/sd3_encoding.py. The job's CFG is the pipelines' own
classifier-free guidance (`guidance_scale`): diffusers runs the negative prompt only above
1, so at CFG 1 (Large Turbo) the negative prompt is not encoded at all.
"""

from __future__ import annotations

from typing import Any

from dreamwire.backend.sd3_encoding import Sd3Conditioning, encode

from .prompting_clip_t5 import FixedPlan


class Sd3Plan(FixedPlan):
    """One SD3 pass's conditioning."""

    def __init__(self, cond: Sd3Conditioning, uncond: Sd3Conditioning | None):
        self.cond = cond
        self.uncond = uncond  # None: CFG is 1, no negative pass

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_embeds": self.cond.sequence,
            "pooled_prompt_embeds": self.cond.pooled,
            "guidance_scale": job.cfg,
        }
        if self.uncond is not None:
            out["negative_prompt_embeds"] = self.uncond.sequence
            out["negative_pooled_prompt_embeds"] = self.uncond.pooled
        return out


def encode_sd3(pipe, prompt: str, negative: str, job) -> Sd3Plan:
    cond = encode(pipe, prompt)
    uncond = encode(pipe, negative) if job.cfg > 1.0 else None
    return Sd3Plan(cond, uncond)
