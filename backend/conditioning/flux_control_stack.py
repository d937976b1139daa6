"""Several Flux ControlNet units in one pass, each with its weight and A1111 guidance window.

diffusers' Flux ControlNet pipelines call their `controlnet` once per step with every
unit's control image (VAE-encoded and packed by the pipeline), mode and scale; the
transformer adds the summed block samples. This stack is that `controlnet`: a
FluxMultiControlNetModel (so the pipelines prepare one image per unit) whose forward skips
a unit outside its window by A1111's rule (controlnet.py: skipped at step i of n when
i/n < start or i/n > end; the pipeline is given a full window, since diffusers' own rule
differs) and scales each unit's samples by its weight, summing in unit order as diffusers
does. With one balanced unit and a full window it computes exactly what
FluxControlNetPipeline computes with that ControlNet alone.

A1111's control modes (soft injection, cond-only) act on a UNet's 13 residuals and have no
Flux meaning: the conditioner refuses them for Flux units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.models.controlnets.controlnet_flux import FluxMultiControlNetModel

from .controlnet import StackUnit
from .window import StepClock


def add_samples(total: list | None, more: list | None) -> list | None:
    if more is None:
        return total
    if total is None:
        return list(more)
    return [a + b for a, b in zip(total, more, strict=True)]


class UnitWindows:
    """What a transformer family's ControlNet stack keeps beside its diffusers Multi model:
    one StackUnit (weight, window) per net, the step clock, and who is told which ran."""

    def hold_units(
        self, nets: list, units: list[StackUnit], on_ran: Callable[[list[bool]], None] | None
    ) -> None:
        if len(nets) != len(units):
            raise ValueError("one StackUnit per ControlNet")
        self.units = list(units)
        self.on_ran = on_ran  # told per call which units ran (an observer)
        self.clock = StepClock()

    def running(self, scales: list[float]) -> list[tuple[int, float]]:
        """This call's step ticked: (unit index, the unit's weight x the pipeline's scale)
        of each unit inside its window with a weight, in unit order; the observer told
        which run."""
        fraction = self.clock.tick()
        ran = [
            unit.active(fraction) and unit.weight != 0 and scale != 0
            for unit, scale in zip(self.units, scales, strict=True)
        ]
        if self.on_ran is not None:
            self.on_ran(ran)
        return [(i, self.units[i].weight * scales[i]) for i, on in enumerate(ran) if on]


class WindowedStack(UnitWindows):
    """A transformer family's ControlNet stack: put before its diffusers Multi model among
    the bases, whose constructor takes the nets."""

    def __init__(
        self,
        nets: list,
        units: list[StackUnit],
        on_ran: Callable[[list[bool]], None] | None = None,
    ):
        super().__init__(nets)
        self.hold_units(nets, units, on_ran)


class FluxControlStack(WindowedStack, FluxMultiControlNetModel):
    def forward(
        self,
        hidden_states: torch.Tensor,
        controlnet_cond: list[torch.Tensor],
        controlnet_mode: list[torch.Tensor],
        conditioning_scale: list[float],
        **kwargs,
    ):
        fraction = self.clock.tick()
        blocks = singles = None
        ran = []
        for image, mode, scale, net, unit in zip(
            controlnet_cond, controlnet_mode, conditioning_scale, self.nets, self.units, strict=True
        ):
            on = unit.active(fraction) and unit.weight != 0 and scale != 0
            ran.append(on)
            if not on:
                continue
            b, s = net(
                hidden_states=hidden_states,
                controlnet_cond=image,
                controlnet_mode=mode[:, None],
                conditioning_scale=unit.weight * scale,
                **{**kwargs, "return_dict": False},
            )
            blocks, singles = add_samples(blocks, b), add_samples(singles, s)
        if self.on_ran is not None:
            self.on_ran(ran)
        return blocks, singles
