"""IP-Adapter units in a job: reference-image tokens added to the UNet's cross-attention.

The adapters go into the cached UNet through diffusers' own loader
(UNet2DConditionLoadersMixin._load_ip_adapter_weights: IPAdapterAttnProcessor2_0 on every
cross-attention, the image projections as `encoder_hid_proj`) for the job, and everything
it changed (attention processors, `encoder_hid_proj`, the config's encoder_hid_dim_type) is
put back after it exactly, each attribute in the slot it lived in (ip_adapter_unet.py), so a
compiled UNet's guards still hold. The image embeddings reach the UNet through a forward pre-hook, as
diffusers' pipelines pass them (`added_cond_kwargs["image_embeds"]`, one tensor per adapter
with one row per UNet batch row), so every pipeline the engine runs (plain, ControlNet,
img2img, inpaint, Hires.fix, composable prompts, which widen them like the text) takes them.

Semantics follow diffusers' prepare_ip_adapter_image_embeds, which matches A1111's
sd-webui-controlnet (ipadapter_model.py):
  * the reference is resized to the encoder's input (A1111: cv2 INTER_AREA to 224 x 224)
    and normalised with CLIP's mean and std;
  * plain adapters read the projected image embedding, and the unconditional half of the
    CFG batch gets zeros; plus adapters read the penultimate hidden states, and the
    unconditional half gets those of an all-zero (normalised) image;
  * the unit weight is the adapter scale; outside the unit's start/end window (A1111's rule,
    active when start <= step/steps <= end) the scale is 0, which diffusers' processor skips;
  * the control mode does not apply (A1111's IP-Adapter hook takes weight and window only);
  * Style and Composition units (ip_adapter_blocks.py) give their weight, times the block's
    factor, only to the attention blocks of IPAdapter_plus's map and 0 to the others, as
    diffusers' set_ip_adapter_scale does with a per-block map; units of different modes
    run together, each adapter with its own scales (diffusers' list of scale maps).

Known gap: a composable (AND) prompt with CFG <= 1 gives the unconditional rows A1111 adds
the cond embedding (the Composer widens the cond rows it gets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import ip_adapter_blocks
from .controlnet import StackUnit
from .ip_adapter_unet import SavedUNet
from .window import StepClock

IP_PROCESSORS = (
    "IPAdapterAttnProcessor",
    "IPAdapterAttnProcessor2_0",
    "IPAdapterXFormersAttnProcessor",
)


@dataclass
class IPUnit:
    state: dict  # {"image_proj": ..., "ip_adapter": ...} for diffusers' loader
    plus: bool
    encoder: Any  # CLIPVisionModelWithProjection
    image: np.ndarray  # H x W x 3 uint8 reference
    unit: StackUnit
    # {attention module: factor} of a Style/Composition unit; None: every block, factor 1.
    blocks: dict[str, float] | None = None


def pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """The encoder's input for an RGB uint8 reference: A1111's resize to size x size (area
    interpolation), then CLIPImageProcessor's rescale and normalisation."""
    import cv2
    from transformers import CLIPImageProcessor

    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    return processor(images=image, return_tensors="pt").pixel_values


@torch.inference_mode()
def embeddings(unit: IPUnit) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) for one unit, each 1 x 1 x ... as diffusers lays out one image."""
    enc = unit.encoder
    x = pixels(unit.image, enc.config.image_size).to(device=enc.device, dtype=enc.dtype)
    if unit.plus:
        cond = enc(x, output_hidden_states=True).hidden_states[-2]
        uncond = enc(torch.zeros_like(x), output_hidden_states=True).hidden_states[-2]
    else:
        cond = enc(x).image_embeds
        uncond = torch.zeros_like(cond)
    return cond[None], uncond[None]


class IPAdapterStack:
    """The IP-Adapter units of a job. `attach(unet)` loads them; `detach()` restores it."""

    def __init__(
        self,
        units: list[IPUnit],
        cfg: bool,
        on_ran: Callable[[list[bool]], None] | None = None,
    ):
        self.units = list(units)
        self.cfg = cfg
        self.embeds = [embeddings(u) for u in self.units]
        self.clock = StepClock()  # the engine reports every step (set_step)
        self.on_ran = on_ran  # told per UNet call which units ran (an observer)
        self._unet = None
        self._saved: SavedUNet | None = None
        self._handle = None

    def set_step(self, step: int, total: int) -> None:
        self.clock.set_step(step, total)

    # -- the UNet ---------------------------------------------------------------------
    def attach(self, unet) -> None:
        if self._unet is not None:
            return
        self._saved = SavedUNet.of(unet)  # what the loader replaces, put back as it was
        self._unet = unet
        try:
            unet._load_ip_adapter_weights([u.state for u in self.units], low_cpu_mem_usage=False)
        except Exception:
            self.detach()
            raise
        self._processors = [
            (p, [ip_adapter_blocks.factor(u.blocks, name) for u in self.units])
            for name, p in unet.attn_processors.items()
            if type(p).__name__ in IP_PROCESSORS
        ]
        self._handle = unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        unet, saved = self._unet, self._saved
        if unet is None or saved is None:
            return
        saved.restore(unet)
        self._unet = self._saved = None

    def _rows(self, pair: tuple[torch.Tensor, torch.Tensor], rows: int, like) -> torch.Tensor:
        cond, uncond = (t.to(device=like.device, dtype=like.dtype) for t in pair)
        if self.cfg and rows % 2 == 0:
            half = rows // 2  # diffusers' CFG batch: [uncond x n, cond x n]
            return torch.cat(
                [uncond.expand(half, *uncond.shape[1:]), cond.expand(half, *cond.shape[1:])]
            )
        return cond.expand(rows, *cond.shape[1:])

    def _pre_hook(self, module, args: tuple, kwargs: dict[str, Any]):
        sample = args[0] if args else kwargs["sample"]
        rows = sample.shape[0]
        fraction = self.clock.fraction()
        ran = [u.unit.active(fraction) and u.unit.weight != 0 for u in self.units]
        if self.on_ran is not None:
            self.on_ran(ran)
        weights = [u.unit.weight if on else 0.0 for u, on in zip(self.units, ran, strict=True)]
        for proc, factors in self._processors:
            proc.scale = [w * f for w, f in zip(weights, factors, strict=True)]
        kwargs = dict(kwargs)
        added = dict(kwargs.get("added_cond_kwargs") or {})
        added["image_embeds"] = [self._rows(pair, rows, sample) for pair in self.embeds]
        kwargs["added_cond_kwargs"] = added
        return args, kwargs
