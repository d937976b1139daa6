"""A Z-Image Fun ControlNet unit in one pass, with its weight and A1111 guidance window.

diffusers' ZImageControlNetPipeline (and its inpaint twin) builds its `controlnet` with
`ZImageControlNetModel.from_transformer`, which lends it the transformer's timestep,
caption and patch embeddings, refiners and pad tokens, then calls it once per step with the
VAE-encoded control picture and `controlnet_conditioning_scale`; the transformer adds the
hints it returns. This stack is that `controlnet`: the pipeline lends it the transformer's
parts, and it lends them on to its net for each call only (the net stays cached between
jobs without keeping a transformer alive). It skips the unit outside its window by
A1111's rule and scales the hints by the unit's weight; with weight 1 and a full window it
computes exactly what the pipeline computes with the net itself.

The pipelines take one control picture, so a pass runs one unit (unit_resolution.py
refuses more on Z-Image).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import ZImageControlNetModel

from .controlnet import StackUnit
from .flux_control_stack import UnitWindows

# What ZImageControlNetModel.from_transformer lends (its attributes, None until lent).
SHARED = (
    "t_scale",
    "t_embedder",
    "all_x_embedder",
    "cap_embedder",
    "rope_embedder",
    "noise_refiner",
    "context_refiner",
    "x_pad_token",
    "cap_pad_token",
)


class ZImageControlStack(torch.nn.Module, UnitWindows):
    def __init__(self, net, unit: StackUnit, on_ran: Callable[[list[bool]], None] | None = None):
        super().__init__()
        self.net = net
        self.hold_units([net], [unit], on_ran)

    @property
    def config(self):  # the pipelines read control_in_dim from it
        return self.net.config

    @property
    def dtype(self) -> torch.dtype:
        return self.net.dtype

    @property
    def device(self) -> torch.device:  # DiffusionPipeline's device asks each component
        return self.net.device

    def forward(self, x, t, cap_feats, control_context, conditioning_scale: float = 1.0, **kw):
        fraction = self.clock.tick()
        unit = self.units[0]
        on = unit.active(fraction) and unit.weight != 0 and conditioning_scale != 0
        if self.on_ran is not None:
            self.on_ran([on])
        if not on:
            return None  # the transformer then runs as without a ControlNet
        ZImageControlNetModel.from_transformer(self.net, self)
        try:
            return self.net(
                x, t, cap_feats, control_context, unit.weight * conditioning_scale, **kw
            )
        finally:
            for name in SHARED:
                setattr(self.net, name, None)
