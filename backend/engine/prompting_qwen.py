"""A Qwen-Image pass's conditioning, in the shape diffusers' Qwen pipelines take it.

The text is Qwen2.5-VL's last hidden states over Qwen's chat template, encoded by the
pipeline's own `encode_prompt` (so the engine's embeddings are diffusers' bit for bit). CFG
is real classifier-free guidance with the negative prompt (`true_cfg_scale`): above 1 the
negative prompt is encoded too, an empty one included, as ComfyUI runs an empty negative.

The Edit pipelines' text encoder also sees the picture, resized by the pipeline inside its
call, and the Layered pipeline captions the picture when the prompt is empty; their passes
hand the prompt text on and the pipeline encodes it there.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class QwenText:
    """One prompt's embeddings and their mask (1 x T x D, 1 x T)."""

    embeds: torch.Tensor
    mask: torch.Tensor | None


class QwenPlan:
    """One pass's conditioning; Qwen takes no prompt schedules or AND prompts (its spec
    refuses them), so it is the same at every step."""

    changes = False
    composable = False

    def __init__(
        self,
        prompt: str,
        negative: str,
        cond: QwenText | None,
        uncond: QwenText | None,
    ):
        self.prompt, self.negative = prompt, negative
        self.cond = cond  # None: the pipeline encodes the text with its picture (Edit)
        self.uncond = uncond

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        if prompt_tokens:
            from dreamwire.shared.errors import DreamwireError, ErrorCode

            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                "Qwen-Image's text conditioning takes no extra prompt tokens",
            )
        out: dict[str, Any] = {"true_cfg_scale": job.cfg}
        if self.cond is None:
            out["prompt"] = self.prompt
            if job.cfg > 1.0:
                out["negative_prompt"] = self.negative
            return out
        out["prompt_embeds"] = self.cond.embeds
        out["prompt_embeds_mask"] = self.cond.mask
        if self.uncond is not None:
            out["negative_prompt_embeds"] = self.uncond.embeds
            out["negative_prompt_embeds_mask"] = self.uncond.mask
        return out

    def tensor_inputs(self) -> list[str]:
        return []

    def loop_tensors(self, step: int, batch: int, cfg: bool) -> dict[str, torch.Tensor]:
        return {}


def _encode(pipe, text: str) -> QwenText:
    embeds, mask = pipe.encode_prompt(text, device=pipe._execution_device)
    return QwenText(embeds, mask)


def encode_qwen(pipe, prompt: str, negative: str, job, mode: str = "") -> QwenPlan:
    cfg = job.cfg > 1.0
    if "image" in inspect.signature(pipe.encode_prompt).parameters or mode == "layers":
        # Edit: the text encoder sees the pipeline's resized picture. Layered: an empty
        # prompt is the pipeline's cue to caption the picture with Qwen2.5-VL first.
        return QwenPlan(prompt, negative, None, None)
    cond = _encode(pipe, prompt)
    return QwenPlan(prompt, negative, cond, _encode(pipe, negative) if cfg else None)
