"""Composable diffusion (A1111's ``AND``) inside diffusers' classifier-free guidance.

A1111 (sd_samplers_cfg_denoiser's combine_denoised) runs the UNet on every subprompt and
on the negative prompt, then takes

    uncond + sum_i (cond_i - uncond) * weight_i * cfg_scale.

diffusers' pipelines run the batch [uncond, cond] and take uncond + g * (cond - uncond).
While a pass runs, hooks on the UNet (and on the pipeline's ControlNet) widen that batch to
[uncond, cond_1 .. cond_k], each subprompt with its own text embeddings (SDXL: its own
pooled vector) and the cond half's latents, and hand the pipeline back
[uncond, uncond + sum_i w_i (cond_i - uncond)], so that its own guidance step computes
A1111's sum. (The sum is linear in the model output, so taking it on the noise prediction
equals A1111 taking it on the denoised image.) Without CFG (cfg <= 1 diffusers runs the
cond half alone) the hooks return A1111's whole formula with the job's cfg, since A1111
always runs the negative prompt.

A ControlNet is run on the widened batch as well, each subprompt's residuals computed with
that subprompt's text, as sd-webui-controlnet does on A1111's batch; its "ControlNet is
more important" mode leaves the unconditional rows alone (`uncond_rows`).

Regional prompts (regions.py, Latent Couple) are composable prompts whose terms are each
multiplied by a filter on the latent grid: the Composer gets them as `masks` and resizes
them to the latent size of every call.

Hooks are registered on the cached UNet for one pipeline call and always removed, so the
model is left as it was.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from dreamwire.backend.prompts import extract_extra_networks, is_composable, split_subprompts

from . import regions
from .hooks import PassCall
from .prompting import StepEmbeds

# UNet / ControlNet keyword inputs that carry one row per batch entry, laid out like the
# latents (the residuals arrive already widened when the ControlNet ran on the wide batch).
_ROW_KWARGS = (
    "timestep_cond",
    "down_block_additional_residuals",
    "mid_block_additional_residual",
    "down_intrablock_additional_residuals",
)


def subprompt_count(prompt: str) -> int:
    """UNet rows per image that the cond half of a pass's batch widens to (1 for a plain
    prompt)."""
    parts = split_subprompts(extract_extra_networks(prompt)[0])
    return len(parts) if is_composable(parts) else 1


def unet_batch(images: int, subprompts: int) -> int:
    """The batch the fast path should plan for, in images: with k subprompts the UNet runs
    (1 + k) rows per image instead of CFG's 2."""
    return images if subprompts <= 1 else math.ceil(images * (1 + subprompts) / 2)


class Composer:
    """One pass's widening hooks and the embeddings of the step being run."""

    def __init__(self, call: PassCall, masks: torch.Tensor | None = None):
        self.pipe = call.pipe
        self.images = call.images
        self.cfg_scale = call.cfg
        self._call = call  # the step being run: its embeddings are `current`
        # Regions: one filter per subprompt (k x H x W, any resolution), None = all ones.
        self.masks = masks
        self._latent_masks: tuple[tuple, torch.Tensor] | None = None
        self.calls = 0  # UNet evaluations (tests, logs)
        self._pending = True  # the layout the UNet's current call came in (CFG or not)

    @property
    def current(self) -> StepEmbeds:
        """The embeddings of the schedule step being run (the pass's step callback moves
        PassCall.step on)."""
        return self._call.embeds()

    @property
    def k(self) -> int:
        return len(self.current.conds)

    def _cfg(self, rows: int) -> bool:
        """Whether a module got diffusers' CFG batch [uncond, cond] or the cond rows alone."""
        cfg = bool(getattr(self.pipe, "do_classifier_free_guidance", True))
        if cfg and rows == 2 * self.images:
            return True
        if rows == self.images:
            return False
        raise RuntimeError(f"composable prompt: unexpected batch of {rows} for {self.images}")

    def _widen(self, x: torch.Tensor, cfg: bool) -> torch.Tensor:
        """Rows [uncond | cond] (or [cond]) -> [uncond | cond x k]; the unconditional rows of
        a cond-only batch are the cond rows (the same latents)."""
        b = self.images
        u, c = (x[:b], x[b:]) if cfg else (x, x)
        return torch.cat([u] + [c] * self.k)

    def _maybe_widen(self, value: Any, rows: int, cfg: bool) -> Any:
        """Widen a per-row tensor (or a list of them) that has the incoming batch's rows; one
        that is already wide (a ControlNet's residuals) is left alone. (With CFG and one
        subprompt both sizes agree, and widening is the identity.)"""
        if isinstance(value, torch.Tensor) and value.ndim >= 1:
            wide = (1 + self.k) * self.images
            if value.shape[0] == rows and value.shape[0] != wide:
                return self._widen(value, cfg)
            return value
        if isinstance(value, list | tuple):
            return type(value)(self._maybe_widen(v, rows, cfg) for v in value)
        return value

    def _text(self, like: torch.Tensor) -> torch.Tensor:
        e, b = self.current, self.images
        rows = [e.uncond.repeat(b, 1, 1)] + [c.repeat(b, 1, 1) for c in e.conds]
        return torch.cat(rows).to(device=like.device, dtype=like.dtype)

    def _added(self, added: dict | None, rows: int, cfg: bool) -> dict | None:
        """SDXL: every subprompt's pooled vector, and the cond half's size/crop ids."""
        if not added:
            return added
        out = dict(added)  # the pipeline shares this dict between ControlNet and UNet
        if "time_ids" in out:
            out["time_ids"] = self._maybe_widen(out["time_ids"], rows, cfg)
        if "image_embeds" in out:  # IP-Adapter tokens: one row per latent row
            out["image_embeds"] = self._maybe_widen(out["image_embeds"], rows, cfg)
        if "text_embeds" in out:
            e, b, like = self.current, self.images, out["text_embeds"]
            pooled = [e.uncond_pooled.repeat(b, 1)] + [p.repeat(b, 1) for p in e.pooleds]
            out["text_embeds"] = torch.cat(pooled).to(device=like.device, dtype=like.dtype)
        return out

    def _inputs(self, args: tuple, kwargs: dict, image_key: str | None) -> tuple[tuple, dict]:
        args, kwargs = list(args), dict(kwargs)
        sample = args[0] if args else kwargs["sample"]
        rows = sample.shape[0]
        cfg = self._cfg(rows)
        wide = self._widen(sample, cfg)
        if args:
            args[0] = wide
        else:
            kwargs["sample"] = wide
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        if isinstance(timestep, torch.Tensor) and timestep.ndim == 1 and len(timestep) == rows:
            widened = self._widen(timestep, cfg)
            if len(args) > 1:
                args[1] = widened
            else:
                kwargs["timestep"] = widened
        if len(args) > 2:
            args[2] = self._text(args[2])
        else:
            kwargs["encoder_hidden_states"] = self._text(kwargs["encoder_hidden_states"])
        kwargs["added_cond_kwargs"] = self._added(kwargs.get("added_cond_kwargs"), rows, cfg)
        for key in _ROW_KWARGS:
            if key in kwargs:
                kwargs[key] = self._maybe_widen(kwargs[key], rows, cfg)
        if image_key and image_key in kwargs:
            kwargs[image_key] = self._maybe_widen(kwargs[image_key], rows, cfg)
        return tuple(args), kwargs

    # -- hooks ----------------------------------------------------------------------------

    def unet_pre(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        self._pending = self._cfg(sample.shape[0])
        return self._inputs(args, kwargs, None)

    def unet_post(self, module, args, kwargs, output):
        self.calls += 1
        cfg = self._pending
        if isinstance(output, tuple):
            return (self.combine(output[0], cfg), *output[1:])
        output.sample = self.combine(output.sample, cfg)
        return output

    def controlnet_pre(self, module, args, kwargs):
        if len(args) > 3:
            raise RuntimeError("composable prompt: ControlNet image passed by position")
        if hasattr(module, "uncond_rows"):
            module.uncond_rows = self.images  # the widened batch starts with the uncond rows
        return self._inputs(args, kwargs, "controlnet_cond")

    def controlnet_post(self, module, args, kwargs, output):
        if hasattr(module, "uncond_rows"):
            module.uncond_rows = None
        return output

    def _filters(self, like: torch.Tensor) -> torch.Tensor | None:
        """The region filters on `like`'s latent grid (k x h x w), kept while the size holds."""
        if self.masks is None:
            return None
        key = (like.shape[-2], like.shape[-1], like.device, like.dtype)
        if self._latent_masks is None or self._latent_masks[0] != key:
            latent = regions.to_latent(self.masks, like.shape[-2], like.shape[-1])
            self._latent_masks = (key, latent.to(device=like.device, dtype=like.dtype))
        return self._latent_masks[1]

    def combine(self, out: torch.Tensor, cfg: bool) -> torch.Tensor:
        """[uncond | cond_1 .. cond_k] model outputs -> what the pipeline expects."""
        b = self.images
        uncond = out[:b]
        guided = uncond.clone()
        scale = 1.0 if cfg else self.cfg_scale
        filters = self._filters(out)
        for i, weight in enumerate(self.current.weights):
            cond = out[b * (i + 1) : b * (i + 2)]
            if filters is None:
                guided += (cond - uncond) * (weight * scale)
            else:
                guided += (cond - uncond) * (filters[i] * (weight * scale))
        return torch.cat([uncond, guided]) if cfg else guided


@contextlib.contextmanager
def hooked(pipe, composer: Composer | None) -> Iterator[None]:
    """Widen the pipeline's UNet (and ControlNet) batch for one call; nothing when
    `composer` is None (a plain prompt)."""
    if composer is None:
        yield
        return
    handles = [
        pipe.unet.register_forward_pre_hook(composer.unet_pre, with_kwargs=True),
        pipe.unet.register_forward_hook(composer.unet_post, with_kwargs=True),
    ]
    net = getattr(pipe, "controlnet", None)
    if net is not None:
        handles.append(net.register_forward_pre_hook(composer.controlnet_pre, with_kwargs=True))
        handles.append(net.register_forward_hook(composer.controlnet_post, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        if net is not None and hasattr(net, "uncond_rows"):
            net.uncond_rows = None
