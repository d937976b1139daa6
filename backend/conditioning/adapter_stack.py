"""T2I-Adapter units in a pass: their features added inside the UNet's down blocks.

A T2I-Adapter reads the control image once per pass (its features do not depend on the
latents or the timestep) and diffusers' UNet2DConditionModel adds feature i inside down block
i (`down_intrablock_additional_residuals`; SDXL's extra last feature after the middle block).
The engine runs its usual pipelines (the ControlNet ones when ControlNet units share the
job, as A1111 allows), so the features reach the UNet through a forward pre-hook on it,
registered for the pass and removed after it.

Semantics follow the A1111 sd-webui-controlnet extension (scripts/hook.py), as for ControlNets
(controlnet.py), with the adapter's own scales:

  * weight w scales every feature; the features of all active units are summed in unit order;
  * guidance window: a unit is skipped at sampling step i of n when i/n < start or i/n > end;
  * balanced                       every feature times w, on both halves of the CFG batch;
    "My prompt is more important"  soft injection: feature k times w * (0.25, 0.62, 0.825,
                                   1.0)[k] (the extension zips the four scales with the
                                   features, so a fifth feature would be dropped: none has one);
    "ControlNet is more important" soft injection, conditional half only (cfg injection);
  * a Hires.fix pass forces soft injection for canny and mlsd units, as for ControlNets;
  * adapters that read one channel (sketch, canny) take the control image's first channel
    (the extension's PlugableAdapter: hint[:, 0:1] when conv_in reads 64 or 256 channels).

One balanced unit with a full window computes what diffusers' StableDiffusion(XL)AdapterPipeline
computes with adapter_conditioning_scale = w.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .controlnet import StackUnit
from .window import StepClock

SOFT_SCALES = (0.25, 0.62, 0.825, 1.0)


class AdapterStack:
    """The T2I-Adapter units of one pass. `attach(unet)` hooks them in; `detach()` undoes it."""

    def __init__(
        self,
        adapters: list,
        units: list[StackUnit],
        images: list[torch.Tensor],
        cfg: bool,
        on_ran: Callable[[list[bool]], None] | None = None,
    ):
        if not len(adapters) == len(units) == len(images):
            raise ValueError("one StackUnit and one image per adapter")
        self.adapters = list(adapters)
        self.units = list(units)
        self.images = list(images)
        self.cfg = cfg
        self._features: list[list[torch.Tensor]] | None = None
        self._handle = None
        self.clock = StepClock()
        self.on_ran = on_ran  # told per UNet call which units ran (an observer)

    # -- steps -------------------------------------------------------------------------
    def set_step(self, step: int, total: int) -> None:
        self.clock.set_step(step, total)

    # -- features ----------------------------------------------------------------------
    def features(self) -> list[list[torch.Tensor]]:
        """Each adapter's features for its image (batch 1), computed once per pass."""
        if self._features is None:
            out = []
            with torch.inference_mode():
                for adapter, image in zip(self.adapters, self.images, strict=True):
                    if adapter.config.in_channels == 1:
                        image = image[:, :1]
                    image = image.to(device=adapter.device, dtype=adapter.dtype)
                    out.append(list(adapter(image)))
            self._features = out
        return self._features

    def residuals(self, rows: int, like: torch.Tensor) -> list[torch.Tensor] | None:
        """The summed, scaled features for a UNet batch of `rows` ([uncond, cond] with CFG),
        or None when no unit is active at this step."""
        fraction = self.clock.tick()
        ran = [u.active(fraction) and u.weight != 0 for u in self.units]
        if self.on_ran is not None:
            self.on_ran(ran)
        if not any(ran):
            return None
        total: list[torch.Tensor] | None = None
        for on, unit, feats in zip(ran, self.units, self.features(), strict=True):
            if not on:
                continue
            if unit.soft:
                scales = [unit.weight * s for s in SOFT_SCALES]
            else:
                scales = [unit.weight] * len(feats)
            # zip drops features beyond the scales, as the extension's zip does.
            scaled = [f * s for f, s in zip(feats, scales, strict=False)]
            scaled = [
                f.to(device=like.device, dtype=like.dtype).expand(rows, -1, -1, -1) for f in scaled
            ]
            if unit.cond_only and self.cfg and rows % 2 == 0:
                mark = torch.ones(rows, 1, 1, 1, dtype=like.dtype, device=like.device)
                mark[: rows // 2] = 0
                scaled = [f * mark for f in scaled]
            if total is None:
                total = scaled
            else:
                total = [a + b for a, b in zip(total, scaled, strict=False)]
        return total

    # -- the UNet hook -----------------------------------------------------------------
    def _pre_hook(self, module, args: tuple, kwargs: dict[str, Any]):
        sample = args[0] if args else kwargs["sample"]
        extra = self.residuals(sample.shape[0], sample)
        if extra is None:
            return None
        kwargs = dict(kwargs)
        # The UNet pops from this list and adds in place into its own activations: a fresh
        # list of fresh tensors per call.
        kwargs["down_intrablock_additional_residuals"] = [f.contiguous() for f in extra]
        return args, kwargs

    def attach(self, unet) -> None:
        self.detach()
        self._handle = unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
