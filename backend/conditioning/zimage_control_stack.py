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
refuses more on Z-Image: diffusers has no multi-ControlNet for it).

img2img and inpaint have no ControlNet pipeline that keeps the picture (the family spec's
`controlnets.through_denoiser`): `hints_into` runs the stack before each of the family's
own pipeline's transformer calls, on the control latents ZImageControlNetPipeline would
make, and hands the transformer its hints, as that pipeline's loop does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def _latents(vae, image: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] to the VAE latents' mode, shifted and scaled, with a frame axis,
    as the Z-Image ControlNet pipelines encode their pictures."""
    from diffusers.pipelines.z_image.pipeline_z_image_controlnet import retrieve_latents

    latents = retrieve_latents(vae.encode(image), sample_mode="argmax")
    return ((latents - vae.config.shift_factor) * vae.config.scaling_factor).unsqueeze(2)


def _inpaint_channels(vae, picture, mask, size: tuple[int, int], batch: int) -> torch.Tensor:
    """What ZImageControlNetInpaintPipeline puts after the control latents for a 2.x net:
    the kept area (1 = keep, at the latents' size) and the latents of the picture with the
    repaint area blacked out; `size` is (height, width)."""
    import torch.nn.functional as F
    from diffusers.image_processor import VaeImageProcessor

    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    masks = VaeImageProcessor(
        vae_scale_factor=scale, do_normalize=False, do_binarize=True, do_convert_grayscale=True
    )
    height, width = size
    where = masks.preprocess(mask, height=height, width=width)
    where = torch.tile(where, [1, 3, 1, 1]).to(device=vae.device, dtype=vae.dtype)
    pixels = VaeImageProcessor(vae_scale_factor=scale * 2).preprocess(
        picture, height=height, width=width
    )
    pixels = pixels.repeat_interleave(batch, dim=0).to(device=vae.device, dtype=vae.dtype)
    kept = _latents(vae, pixels * (where < 0.5))
    keep = F.interpolate(1 - where[:, :1], size=kept.size()[-2:], mode="nearest").unsqueeze(2)
    return torch.cat([keep.to(kept.dtype).repeat_interleave(batch // keep.shape[0], 0), kept], 1)


def control_context(
    vae, image: torch.Tensor, batch: int, in_dim: int, picture=None, mask=None
) -> torch.Tensor:
    """The control picture (1 x 3 x H x W in [-1, 1]) as the Z-Image ControlNet pipelines
    hand it to their controlnet: its latents, then, for a 2.x net (33 input channels), the
    inpaint channels: the kept area and the masked picture's latents in an inpaint pass
    (ZImageControlNetInpaintPipeline's), zeros elsewhere (ZImageControlNetPipeline's)."""
    image = image.repeat_interleave(batch, dim=0).to(device=vae.device, dtype=vae.dtype)
    latents = _latents(vae, image)
    extra = in_dim - latents.shape[1]
    if extra <= 0:
        return latents
    if mask is not None and picture is not None:
        size = (image.shape[-2], image.shape[-1])
        channels = _inpaint_channels(vae, picture, mask, size, batch)
        if channels.shape[1] == extra:
            return torch.cat([latents, channels], dim=1)
    zeros = torch.zeros(latents.shape[0], extra, *latents.shape[2:])
    return torch.cat([latents, zeros.to(latents.device, latents.dtype)], dim=1)


class _Hints:
    """The forward pre-hook: the control latents are made at the first call (inside the
    pipeline's no-grad call, after it has encoded its own picture), then the stack runs
    with the transformer's inputs and its hints join the call's arguments."""

    def __init__(self, stack: ZImageControlStack, image: torch.Tensor, call):
        self.stack, self.image, self.call = stack, image, call
        self.context: torch.Tensor | None = None

    def __call__(self, module, args, kwargs):
        x, t, cap_feats = args[:3]
        if self.context is None:
            in_dim = int(self.stack.config.control_in_dim or 0)  # 0: the latents as they are
            call = self.call
            self.context = control_context(
                call.pipe.vae, self.image, call.images, in_dim, call.picture, call.mask
            )
        # CFG doubles the batch: the pictures repeat as the ControlNet pipeline repeats them.
        context = self.context.repeat(len(x) // self.context.shape[0], 1, 1, 1, 1)
        hints = self.stack(x, t, cap_feats, context, 1.0)
        if hints is not None:
            kwargs = {**kwargs, "controlnet_block_samples": hints}
        return args, kwargs


@contextmanager
def hints_into(stack: ZImageControlStack, image: torch.Tensor, call) -> Iterator[None]:
    """Around one pipeline call (a PassCall): the stack's hints reach every transformer
    call of `call.pipe`, the control picture `image` encoded by its VAE."""
    pipe = call.pipe
    # What the ControlNet pipeline's constructor does with its controlnet (the stack is
    # made per pass, so it keeps them no longer than the pass).
    ZImageControlNetModel.from_transformer(stack, pipe.transformer)
    hook = pipe.transformer.register_forward_pre_hook(_Hints(stack, image, call), with_kwargs=True)
    try:
        yield
    finally:
        hook.remove()
