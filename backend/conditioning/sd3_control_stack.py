"""Several SD3 ControlNet units in one pass, each with its weight and A1111 guidance window.

diffusers' StableDiffusion3ControlNetPipeline calls its `controlnet` once per step with
every unit's VAE-encoded control image and scale; the transformer adds the summed block
samples. This stack is that `controlnet`: an SD3MultiControlNetModel (so the pipeline
prepares one image per unit and lends each net the transformer's position embedding) whose
forward skips a unit outside its window by A1111's rule (the pipeline is given a full
window) and scales each unit's samples by its weight, summing in unit order as diffusers
does. With one unit at weight 1 and a full window it computes exactly what the pipeline
computes with that ControlNet alone.
"""

from __future__ import annotations

import torch
from diffusers.models.controlnets.controlnet_sd3 import SD3MultiControlNetModel

from .flux_control_stack import WindowedStack, add_samples


class Sd3ControlStack(WindowedStack, SD3MultiControlNetModel):
    def forward(
        self,
        hidden_states: torch.Tensor,
        controlnet_cond: list[torch.Tensor],
        conditioning_scale: list[float] | float,
        pooled_projections: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        joint_attention_kwargs=None,
        return_dict: bool = True,
    ):
        if not isinstance(conditioning_scale, list):
            conditioning_scale = [conditioning_scale] * len(self.nets)
        total = None
        for i, scale in self.running(conditioning_scale):
            (samples,) = self.nets[i](
                hidden_states=hidden_states,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                pooled_projections=pooled_projections,
                controlnet_cond=controlnet_cond[i],
                conditioning_scale=scale,
                joint_attention_kwargs=joint_attention_kwargs,
                return_dict=False,
            )
            total = add_samples(total, samples)
        return (None if total is None else tuple(total),)
