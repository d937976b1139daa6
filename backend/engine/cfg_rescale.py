"""The job option `cfg_rescale` (A1111's CFG Rescale extension, Forge's and ComfyUI's
RescaleCFG, diffusers' `guidance_rescale`) in every pass of a UNet family, not only in the
pipelines diffusers gave the argument to.

diffusers rescales the guided prediction with `rescale_noise_cfg` inside SD's and SDXL's
txt2img pipelines (and a few more), but not in SD's img2img and inpaint pipelines nor in
any ControlNet pipeline, while an artist on a v-prediction model (NoobAI-XL v-pred) needs
it in all of them. Where the pipeline takes `guidance_rescale`, the pass hands it on
(`native`); elsewhere a forward hook on the denoiser rewrites its [uncond, cond] output to
[uncond, cond'] with cond' chosen so that the pipeline's own guidance step,
uncond + g * (cond' - uncond), gives diffusers' rescaled prediction: the same formula,
computed by diffusers' own function, on the same tensors.

The hook is registered after the AND-prompt hook (composable.py), so the cond half it
reads is the combined one, as diffusers' native rescale reads the pipeline's combined
`noise_pred_text`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

from .hooks import Conditioner, JobContext, PassCall, PassPart

HOOK_NAME = "engine.cfg_rescale"


def native(pipe) -> bool:
    """Whether the pipeline rescales itself (its call takes `guidance_rescale`)."""
    return "guidance_rescale" in inspect.signature(type(pipe).__call__).parameters


def rescaled_cond(out: torch.Tensor, images: int, cfg_scale: float, phi: float) -> torch.Tensor:
    """[uncond, cond] -> [uncond, cond'] such that uncond + g (cond' - uncond) is diffusers'
    rescale_noise_cfg of the guided prediction, `phi` the rescale factor."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        rescale_noise_cfg,
    )

    uncond, cond = out[:images], out[images:]
    guided = uncond + cfg_scale * (cond - uncond)
    rescaled = rescale_noise_cfg(guided, cond, guidance_rescale=phi)
    return torch.cat([uncond, uncond + (rescaled - uncond) / cfg_scale])


class Rescaler:
    """The forward hook of one pipeline call: acts on diffusers' CFG batch only (with CFG
    at or below 1 diffusers runs the cond rows alone and has nothing to rescale)."""

    def __init__(self, call: PassCall, phi: float):
        self.images = call.images
        self.cfg_scale = call.cfg
        self.phi = phi

    def __call__(self, module, args, output):
        sample = output[0] if isinstance(output, tuple) else output.sample
        if self.cfg_scale <= 1.0 or sample.shape[0] != 2 * self.images:
            return output
        new = rescaled_cond(sample, self.images, self.cfg_scale, self.phi)
        if isinstance(output, tuple):
            return (new, *output[1:])
        output.sample = new
        return output


class CfgRescaleConditioner(Conditioner):
    name = HOOK_NAME

    def resolve(self, ctx: JobContext) -> float | None:
        return ctx.job.cfg_rescale if ctx.job.cfg_rescale > 0 else None

    @contextmanager
    def attach(self, ctx: JobContext, resolved: float, mode: str) -> Iterator[PassPart | None]:
        def around(call: PassCall):
            if native(call.pipe):
                return nullcontext()  # the pass hands guidance_rescale to the pipeline
            return _hooked(call.pipe.unet, Rescaler(call, resolved))

        yield PassPart(around_call=around)


@contextmanager
def _hooked(denoiser, rescaler: Rescaler) -> Iterator[None]:
    handle = denoiser.register_forward_hook(rescaler)
    try:
        yield
    finally:
        handle.remove()
