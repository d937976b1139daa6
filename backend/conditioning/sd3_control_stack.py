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

from collections.abc import Callable

import torch
from diffusers.models.controlnets.controlnet_sd3 import SD3MultiControlNetModel

from .controlnet import StackUnit
from .flux_control_stack import UnitWindows


class Sd3ControlStack(SD3MultiControlNetModel, UnitWindows):
    def __init__(
        self,
        nets: list,
        units: list[StackUnit],
        on_ran: Callable[[list[bool]], None] | None = None,
    ):
        super().__init__(nets)
        self.hold_units(nets, units, on_ran)

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
        fraction = self.clock.tick()
        if not isinstance(conditioning_scale, list):
            conditioning_scale = [conditioning_scale] * len(self.nets)
        total = None
        ran = []
        for image, scale, net, unit in zip(
            controlnet_cond, conditioning_scale, self.nets, self.units, strict=True
        ):
            on = unit.active(fraction) and unit.weight != 0 and scale != 0
            ran.append(on)
            if not on:
                continue
            (samples,) = net(
                hidden_states=hidden_states,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                pooled_projections=pooled_projections,
                controlnet_cond=image,
                conditioning_scale=unit.weight * scale,
                joint_attention_kwargs=joint_attention_kwargs,
                return_dict=False,
            )
            total = (
                list(samples)
                if total is None
                else [a + b for a, b in zip(total, samples, strict=True)]
            )
        if self.on_ran is not None:
            self.on_ran(ran)
        return (None if total is None else tuple(total),)
