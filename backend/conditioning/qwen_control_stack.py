"""Several Qwen-Image ControlNet units in one pass, each with its weight and A1111 guidance
window.

diffusers' QwenImageControlNetPipeline calls its `controlnet` once per step (the prompt's
call only; the negative prompt's transformer call reuses the samples) with every unit's
VAE-encoded, packed control latents and scale; the transformer adds the samples to its
blocks. This stack is that `controlnet`: a QwenImageMultiControlNetModel (so the pipeline
prepares one control picture per unit) whose forward skips a unit outside its window by
A1111's rule (the pipeline is given a full window) and scales each unit's samples by its
weight, summing in unit order as diffusers does. diffusers' own Multi model runs several
pictures through one Union net only; this stack gives each unit its own net (the same
cached net where the units name one file), which for one file is exactly diffusers' sum.
"""

from __future__ import annotations

import torch
from diffusers.models.controlnets.controlnet_qwenimage import QwenImageMultiControlNetModel

from .flux_control_stack import WindowedStack, add_samples


class QwenControlStack(WindowedStack, QwenImageMultiControlNetModel):
    def forward(
        self,
        hidden_states: torch.Tensor,
        controlnet_cond: list[torch.Tensor],
        conditioning_scale: list[float],
        **kwargs,
    ):
        total = None
        for i, scale in self.running(conditioning_scale):
            samples = self.nets[i](
                hidden_states=hidden_states,
                controlnet_cond=controlnet_cond[i],
                conditioning_scale=scale,
                **{**kwargs, "return_dict": False},
            )
            total = add_samples(total, samples)
        return total
