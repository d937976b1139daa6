"""A Qwen3 family's (Z-Image) conditioning for a pass, in the shape diffusers' Z-Image
pipelines take: a list of variable-length token embeddings per prompt.

The job's CFG scale is A1111's/ComfyUI's (`uncond + cfg * (cond - uncond)`); diffusers'
Z-Image pipelines write the same guidance as `cond + g * (cond - uncond)`, so g = cfg - 1,
and at CFG 1 (Turbo's default) no negative pass runs at all.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.qwen3_encoding import encode
from dreamwire.shared.errors import DreamwireError, ErrorCode


class Qwen3Plan:
    """One pass's conditioning; the same at every step (the family spec refuses prompt
    schedules and AND prompts before loading)."""

    changes = False
    composable = False

    def __init__(self, cond: torch.Tensor, uncond: torch.Tensor | None):
        self.cond = cond
        self.uncond = uncond  # None: CFG 1, no negative pass

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        if prompt_tokens:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                "this model's text conditioning takes no extra prompt tokens",
            )
        out: dict[str, Any] = {"prompt_embeds": [self.cond], "guidance_scale": 0.0}
        if self.uncond is not None:
            out["guidance_scale"] = job.cfg - 1.0
            out["negative_prompt_embeds"] = [self.uncond]
        return out

    def tensor_inputs(self) -> list[str]:
        return []

    def loop_tensors(self, step: int, batch: int, cfg: bool) -> dict[str, torch.Tensor]:
        return {}


def encode_qwen3(pipe, prompt: str, negative: str, job) -> Qwen3Plan:
    cond = encode(pipe, prompt)
    uncond = encode(pipe, negative) if job.cfg > 1.0 else None
    return Qwen3Plan(cond, uncond)
