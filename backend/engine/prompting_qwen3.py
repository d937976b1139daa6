"""A Qwen3 family's (Z-Image, Flux.2 Klein) conditioning for a pass, in the shape its
diffusers pipelines take: Z-Image a list of variable-length token embeddings per prompt,
Klein one padded tensor (the spec's `ChatText.keep_padding`).

The job's CFG scale is A1111's/ComfyUI's (`uncond + cfg * (cond - uncond)`); diffusers'
Z-Image pipelines write the same guidance as `cond + g * (cond - uncond)`, so g = cfg - 1
(`ChatText.guidance_offset`). At CFG 1 (both Turbo's and Klein's default) no negative pass
runs at all.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.families.spec import ChatText
from dreamwire.backend.qwen3_encoding import encode
from dreamwire.shared.errors import DreamwireError, ErrorCode


class Qwen3Plan:
    """One pass's conditioning; the same at every step (the family spec refuses prompt
    schedules and AND prompts before loading)."""

    changes = False
    composable = False

    def __init__(self, chat: ChatText, cond: torch.Tensor, uncond: torch.Tensor | None):
        self.chat = chat
        self.cond = cond
        self.uncond = uncond  # None: CFG 1, no negative pass

    def _shaped(self, embeds: torch.Tensor):
        return embeds if self.chat.keep_padding else [embeds]

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        if prompt_tokens:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                "this model's text conditioning takes no extra prompt tokens",
            )
        out: dict[str, Any] = {
            "prompt_embeds": self._shaped(self.cond),
            "guidance_scale": 1.0 - self.chat.guidance_offset,
        }
        if self.uncond is not None:
            out["guidance_scale"] = job.cfg - self.chat.guidance_offset
            out["negative_prompt_embeds"] = self._shaped(self.uncond)
        return out

    def tensor_inputs(self) -> list[str]:
        return []

    def loop_tensors(self, step: int, batch: int, cfg: bool) -> dict[str, torch.Tensor]:
        return {}


def encode_qwen3(pipe, chat: ChatText, prompt: str, negative: str, job) -> Qwen3Plan:
    cond = encode(pipe, prompt, chat)
    uncond = encode(pipe, negative, chat) if job.cfg > 1.0 else None
    return Qwen3Plan(chat, cond, uncond)
