"""Several ControlNets in one pass, each with its weight, guidance window and control mode.

Semantics follow the A1111 sd-webui-controlnet extension (scripts/hook.py, controlnet.py):

  * weight w scales that unit's residuals;
  * guidance window: a unit is skipped at sampling step i (0-based, of the n steps this pass
    runs) when i/n < start or i/n > end (the extension's `guidance_stopped`);
  * control modes:
      balanced                       every residual times w, on the conditional and the
                                     unconditional halves of the CFG batch;
      "My prompt is more important"  (prompt) soft injection: residual k (0-based; the
                                     down-block residuals, then the middle one) is scaled by
                                     w * 0.825 ** (12 - k); both halves. For SD1/SD2 (13
                                     residuals) the middle block gets w; for SDXL (10) the
                                     extension cuts the same list to 10, so the middle gets
                                     w * 0.825 ** 3, and so does this stack;
      "ControlNet is more important" (controlnet) soft injection as above, and the residuals
                                     are applied to the conditional half only (cfg injection);
  * shuffle-type models with global average pooling apply to the conditional half only and
    pool each residual over its spatial dimensions;
  * in a Hires.fix pass, canny and mlsd units use soft injection (the extension forces it).

Residuals of all active units are summed in unit order, as diffusers' MultiControlNetModel
sums them, so a job with balanced units and full windows computes exactly what diffusers'
StableDiffusionControlNetPipeline computes. (diffusers' own control_guidance_start/end use a
slightly different rule, keep iff i/n >= start and (i+1)/n <= end; this stack uses the A1111
rule above and is given a full window by the pipeline.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import MultiControlNetModel

from .window import StepClock

SOFT_BASE = 0.825
MODES = ("balanced", "prompt", "controlnet")


@dataclass
class StackUnit:
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    mode: str = "balanced"
    pool: bool = False  # global average pooling (ControlNet 1.1 shuffle)
    force_soft: bool = False  # Hires.fix pass with canny/mlsd

    def active(self, fraction: float) -> bool:
        return not (fraction < self.start or fraction > self.end)

    @property
    def soft(self) -> bool:
        return self.mode != "balanced" or self.force_soft

    @property
    def cond_only(self) -> bool:
        return self.mode == "controlnet" or self.pool


class ControlNetStack(MultiControlNetModel):
    """A MultiControlNetModel that applies A1111's per-unit windows and control modes.

    diffusers' ControlNet pipelines call it once per UNet evaluation with the CFG batch
    [unconditional, conditional]. The engine tells it the sampling step through
    `set_step` (from its step hook); used on its own, it counts its calls instead.
    """

    def __init__(
        self,
        nets: list,
        units: list[StackUnit],
        cfg: bool,
        on_ran: Callable[[list[bool]], None] | None = None,
    ):
        super().__init__(nets)
        if len(nets) != len(units):
            raise ValueError("one StackUnit per ControlNet")
        self.units = list(units)
        self.cfg = cfg
        self.on_ran = on_ran  # told per call which units ran (an observer)
        # Set while a composable (AND) prompt widens the batch: its first rows are the
        # unconditional ones (engine/composable.py); None = diffusers' CFG halves.
        self.uncond_rows: int | None = None
        self.reset()

    def reset(self) -> None:
        self.clock = StepClock()

    def set_step(self, step: int, total: int) -> None:
        self.clock.set_step(step, total)

    def fraction(self) -> float:
        return self.clock.fraction()

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: list[torch.Tensor],
        conditioning_scale: list[float],
        class_labels=None,
        timestep_cond=None,
        attention_mask=None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        guess_mode: bool = False,
        return_dict: bool = True,
    ):
        fraction = self.clock.tick()
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        ran = []
        for image, scale, net, unit in zip(
            controlnet_cond, conditioning_scale, self.nets, self.units, strict=True
        ):
            on = unit.active(fraction) and unit.weight != 0 and scale != 0
            ran.append(on)
            if not on:
                continue
            # Balanced units let the model scale (exactly as diffusers does); soft units are
            # scaled per residual below.
            d, m = net(
                sample=sample,
                timestep=timestep,
                encoder_hidden_states=encoder_hidden_states,
                controlnet_cond=image,
                conditioning_scale=1.0 if unit.soft else unit.weight * scale,
                class_labels=class_labels,
                timestep_cond=timestep_cond,
                attention_mask=attention_mask,
                added_cond_kwargs=added_cond_kwargs,
                cross_attention_kwargs=cross_attention_kwargs,
                guess_mode=False,
                return_dict=False,
            )
            residuals = [*d, m]
            if unit.soft:
                w = unit.weight * scale
                residuals = [r * (w * SOFT_BASE ** float(12 - k)) for k, r in enumerate(residuals)]
            if unit.pool:
                residuals = [torch.mean(r, dim=(2, 3), keepdim=True) for r in residuals]
            uncond = self.uncond_rows
            if uncond is None and self.cfg and sample.shape[0] % 2 == 0:
                uncond = sample.shape[0] // 2
            if unit.cond_only and uncond:
                mark = torch.ones(
                    sample.shape[0], 1, 1, 1, dtype=sample.dtype, device=sample.device
                )
                mark[:uncond] = 0
                residuals = [r * mark for r in residuals]
            if unit.pool:
                # Broadcast pooled residuals back to the UNet's feature sizes.
                residuals = [
                    r.expand(-1, -1, *x.shape[2:]) for r, x in zip(residuals, [*d, m], strict=True)
                ]
            *d, m = residuals
            if down is None:
                down, mid = list(d), m
            else:
                down = [a + b for a, b in zip(down, d, strict=True)]
                mid = mid + m
        if self.on_ran is not None:
            self.on_ran(ran)
        return down, mid
