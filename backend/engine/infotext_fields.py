"""The A1111 generation parameters of one image, in A1111's field order.

shared/infotext.py formats and parses the text; this module only decides which fields a
job produces, with A1111's names and value spellings, so other tools read them back.
"""

from __future__ import annotations

from dreamwire.backend import samplers

from .hooks import JobContext


def _num(v: float) -> str:
    return f"{v:g}"


def fields_for(ctx: JobContext, seed: int, index: int) -> dict[str, str]:
    job, model = ctx.job, ctx.model
    f: dict[str, str] = {"Steps": str(job.steps)}
    f.update(samplers.infotext_sampler(job.sampler))
    f["CFG scale"] = _num(job.cfg)
    f["Seed"] = str(seed)
    f["Size"] = f"{job.width}x{job.height}"
    if model.short_hash:
        f["Model hash"] = model.short_hash
    f["Model"] = model.name
    if model.vae_name:
        if model.vae_hash:
            f["VAE hash"] = model.vae_hash
        f["VAE"] = model.vae_name
    subseeds = ctx.state.get("subseeds") or []
    if subseeds:
        f["Variation seed"] = str(subseeds[index])
        f["Variation seed strength"] = _num(job.subseed_strength)
    if job.mode != "txt2img":
        f["Denoising strength"] = _num(job.strength)
    elif job.hires is not None:
        f["Denoising strength"] = _num(job.hires.denoise)
    if job.clip_skip > 1:
        f["Clip skip"] = str(job.clip_skip)
    if job.seamless != "none":
        # A1111 writes "Tiling: True"; the one-axis form is the asymmetric-tiling extension's.
        f["Tiling"] = "True" if job.seamless == "both" else job.seamless
    if job.mode == "inpaint":
        f["Mask blur"] = str(job.mask_blur)
        if job.inpaint_full_res:
            f["Inpaint area"] = "Only masked"
            f["Masked area padding"] = str(job.inpaint_padding)
    if job.hires is not None:
        f["Hires upscale"] = _num(job.hires.scale)
        if job.hires.steps:
            f["Hires steps"] = str(job.hires.steps)
        f["Hires upscaler"] = job.hires.upscaler
    return f


def infotext_for(ctx: JobContext, seed: int, index: int, width: int, height: int) -> str:
    from dreamwire.shared import infotext

    return infotext.format_infotext(ctx.job.prompt, ctx.job.negative, fields_for(ctx, seed, index))
