"""The A1111 generation parameters of one image.

shared/infotext.py formats and parses the text (and knows A1111's key order); this module
decides which fields a job produces, with A1111's names and spellings, so other tools
read them back. The control units' entries come with the plan's units; extensions add
their own fields (Lora hashes) through `ctx.infotext_extra`.
"""

from __future__ import annotations

from dreamwire.backend.families import spec_for
from dreamwire.backend.library import hashing
from dreamwire.shared.infotext import Infotext, format_infotext, parse_hashes
from dreamwire.shared.infotext_controlnet import parse_entry, unit_index
from dreamwire.shared.job_mode import JobMode

from . import regions, scheduling
from .hooks import JobContext
from .planning import hires_prompts
from .prompting_clip_t5 import distilled_cfg
from .prompting_sd3 import skip_layers


def _has_guidance_input(model) -> bool:
    """Flux dev takes the distilled guidance; schnell's transformer has no such input."""
    denoiser = model.components.get(spec_for(model.family).denoiser)
    return bool(getattr(getattr(denoiser, "config", None), "guidance_embeds", False))


def _zero_terminal_snr(model) -> bool:
    scheduler = model.components.get("scheduler")
    return bool(getattr(getattr(scheduler, "config", None), "rescale_betas_zero_snr", False))


def infotext_object(ctx: JobContext, seed: int, index: int) -> Infotext:
    job, model, plan = ctx.job, ctx.model, ctx.plan
    sampler = scheduling.infotext(model.family, job.sampler)
    # An SD upscale records its tile pass, as A1111's script does: the tile's size and axes.
    width, height = plan.size
    seamless = plan.seamless
    info = Infotext(
        prompt=job.prompt,
        negative_prompt=job.negative,
        steps=job.steps,
        sampler=sampler["Sampler"],
        # A1111 1.9+ writes the schedule type always, "Automatic" included.
        schedule_type=sampler.get("Schedule type"),
        cfg_scale=float(job.cfg),
        seed=seed,
        width=width,
        height=height,
        model_hash=model.short_hash or None,
        model=model.name,
        clip_skip=job.clip_skip if job.clip_skip > 1 else None,
    )
    if spec_for(model.family).distilled_guidance and _has_guidance_input(model):
        # Forge's name for the guidance a distilled model (Flux dev) takes as an input.
        own = distilled_cfg(job, model.family, model.arch, bool(plan.stands_in_for))
        info.extras["Distilled CFG Scale"] = f"{own:g}"
    if job.cfg_rescale > 0:
        info.extras["CFG Rescale"] = f"{job.cfg_rescale:g}"  # the A1111 extension's key
    if _zero_terminal_snr(model):
        info.extras["Noise Schedule"] = "Zero Terminal SNR"  # A1111's sd_noise_schedule
    if job.slg_scale > 0:
        # Neither Forge nor ComfyUI writes skip-layer guidance into its parameters; these
        # names follow diffusers' (skip_layer_guidance_scale, skip_guidance_layers).
        info.extras["SLG Scale"] = f"{job.slg_scale:g}"
        info.extras["SLG Layers"] = " ".join(str(i) for i in skip_layers(model.arch))
    if model.vae_name:
        info.vae = model.vae_name
        info.vae_hash = model.vae_hash or None
    subseeds = ctx.subseeds
    if subseeds:
        info.variation_seed = subseeds[index]
        info.variation_seed_strength = float(job.subseed_strength)
    if job.mode not in (JobMode.TXT2IMG, JobMode.EDIT, JobMode.LAYERS):  # every step runs
        info.denoising_strength = float(job.strength)
    elif job.hires is not None:
        info.denoising_strength = float(job.hires.denoise)
    if seamless == "both":
        info.tiling = True
    elif seamless in ("x", "y"):
        # One-axis tiling as the asymmetric-tiling extension writes it.
        info.extras["Tile X"] = str(seamless == "x")
        info.extras["Tile Y"] = str(seamless == "y")
    if job.mode is JobMode.INPAINT:
        info.mask_blur = job.mask_blur
        if plan.stands_in_for:  # Model is the Fill model that ran, picked for this one
            info.extras["Inpaint model"] = f"auto for {plan.stands_in_for}"
        if job.inpaint_full_res:
            info.extras["Inpaint area"] = "Only masked"
            info.extras["Masked area padding"] = str(job.inpaint_padding)
    if job.hires is not None:
        # A1111 writes the hires prompts only where they differ from the first pass's.
        hr_prompt, hr_negative = hires_prompts(job)
        if hr_prompt != job.prompt:
            info.extras["Hires prompt"] = hr_prompt
        if hr_negative != job.negative:
            info.extras["Hires negative prompt"] = hr_negative
        if job.hires.resizes:
            # A1111 writes the requested size (0 included) instead of the scale.
            info.hires_resize = (job.hires.width, job.hires.height)
        else:
            info.hires_upscale = float(job.hires.scale)
        info.hires_steps = job.hires.steps or None
        info.hires_upscaler = job.hires.upscaler
    info.extras.update(regions.infotext(job.regions))
    info.ti_hashes = ti_hashes(ctx)
    info.extras.update(plan.infotext)  # known before running: the plan's
    for unit in plan.units:  # A1111's ControlNet extension's entries, with the models picked
        if unit.infotext is not None:
            info.controlnets[unit.index] = unit.infotext
    for key, value in ctx.infotext_extra.items():
        if key == "Lora hashes":
            info.lora_hashes = parse_hashes(value)
        elif unit_index(key) is not None:  # "ControlNet N", typed as a reader sees it
            info.controlnets[unit_index(key)] = parse_entry(value)
        else:
            info.extras[key] = value
    return info


def ti_hashes(ctx: JobContext) -> dict[str, str]:
    """A1111's "TI hashes": each textual-inversion embedding the prompts used, with the
    first 12 hex digits of its file's sha256 (A1111's Embedding.shorthash)."""
    store = ctx.embeddings
    paths = getattr(store, "paths", None) or {}
    out = {}
    for name in sorted(ctx.embeddings_used):
        path = paths.get(name)
        if path is not None:
            out[name] = hashing.sha256(path)[:12]
    return out


def infotext_for(ctx: JobContext, seed: int, index: int) -> str:
    return format_infotext(infotext_object(ctx, seed, index))
