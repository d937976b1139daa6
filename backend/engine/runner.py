"""One job from start to end: modes, seeds, seamless/tiled VAE, Hires.fix, results.

The Engine owns models and devices; this module owns the order of things in a job.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import numpy as np
from PIL import Image

from dreamwire.backend.canvas import masks, outpaint
from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.result import GeneratedImage, JobResult

from . import hires, masked_content, noise, sd_upscale
from .daam_conditioner import heat_maps
from .hooks import JobContext
from .infotext_fields import infotext_for
from .passes import PassSpec, executed_steps, run_pass
from .planning import PlannedPass
from .progress import Reporter
from .seamless import seamless
from .tiled_vae import cancellable, should_tile, tiled


def _to_uint8(images: np.ndarray) -> list[np.ndarray]:
    # Same rounding as diffusers' numpy_to_pil, so results equal the reference pipelines.
    return [(img * 255).round().astype(np.uint8) for img in images]


def run(ctx: JobContext, reporter: Reporter, extensions, low_vram: bool, vae_tile_px: int | None):
    job, model = ctx.job, ctx.model
    t0 = time.perf_counter()
    seed = noise.resolve_seed(job.seed)
    seeds = noise.batch_seeds(seed, job.batch)
    subseeds: list[int] = []
    if job.subseed_strength > 0:
        subseeds = noise.batch_seeds(noise.resolve_seed(job.subseed), job.batch)
    ctx.seed, ctx.subseeds = seed, subseeds

    comps = model.components
    the_plan = ctx.plan
    with ExitStack() as stack:
        denoiser = comps[spec_for(model.family).denoiser]
        stack.enter_context(seamless([denoiser, comps["vae"]], the_plan.seamless))
        stack.enter_context(cancellable(comps["vae"], reporter.check_cancel))
        # The largest picture the VAE decodes: the result, or one SD-upscale tile.
        out_w, out_h = final_size(job) if the_plan.upscale is None else the_plan.size
        stack.enter_context(
            tiled(
                comps["vae"],
                should_tile(job.tiled_vae, out_w, out_h, low_vram, the_plan.seamless),
                vae_tile_px,
            )
        )
        mode = the_plan.mode
        if mode is JobMode.UPSCALE:  # refined; the plain upscale never gets here
            images = sd_upscale.refine(ctx, reporter, seeds, subseeds, extensions)
        elif mode is JobMode.TXT2IMG:
            images = _txt2img(ctx, reporter, seeds, subseeds, extensions)
        elif mode is JobMode.IMG2IMG:
            images = _img2img(ctx, reporter, seeds, subseeds, extensions)
        elif mode is JobMode.INPAINT:
            images = _inpaint(ctx, reporter, seeds, subseeds, extensions)
        elif mode is JobMode.EDIT:
            images = _edit(ctx, reporter, seeds, subseeds, extensions)
        elif mode is JobMode.LAYERS:
            images = _layers(ctx, reporter, seeds, subseeds, extensions)
        else:  # planning.plan refuses a mode no pipeline of the family serves
            raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, f"no {mode} runner", job.job_id)
    t1 = time.perf_counter()

    if mode is JobMode.LAYERS:  # one picture in, its layers out: bottom first
        results = [
            GeneratedImage(image=img, seed=seed, infotext=infotext_for(ctx, seed, 0), layer=i)
            for i, img in enumerate(images)
        ]
    else:
        results = [
            GeneratedImage(
                image=img,
                seed=s,
                infotext=infotext_for(ctx, s, i),
                heat_maps=heat_maps(ctx, i, img.shape[:2]),
            )
            for i, (img, s) in enumerate(zip(images, seeds, strict=True))
        ]
    return JobResult(
        job_id=job.job_id,
        images=results,
        timings={"generate": t1 - t0},
        model=model.name,
        tag=job.tag,
    )


def final_size(job: Job) -> tuple[int, int]:
    if job.hires is not None:
        return hires.target_size(job.width, job.height, job.hires)
    if job.outpaint.any():
        return outpaint.generation_size(job.width, job.height, job.outpaint)
    return job.width, job.height


def _canvas(ctx: JobContext, image) -> outpaint.Canvas:
    """The picture laid out as the plan says (canvas/layout.py), for the conditioners."""
    cp = ctx.plan.canvas
    return outpaint.Canvas(image, cp.mask, cp.original, cp.picture, cp.border)


def _spec(planned: PlannedPass, image=None, mask=None, **kw) -> PassSpec:
    return PassSpec(
        planned.mode,
        planned.width,
        planned.height,
        planned.steps,
        planned.strength,
        image,
        mask,
        hires=planned.hires,
        fixed_steps=planned.fixed_steps,
        **kw,
    )


def _txt2img(ctx, reporter, seeds, subseeds, extensions) -> list[np.ndarray]:
    job = ctx.job
    planned = ctx.plan.passes
    reporter.total = ctx.plan.total_steps
    first = _spec(planned[0])
    if job.hires is None:
        return _to_uint8(run_pass(ctx, first, seeds, subseeds, reporter, extensions))

    plan = job.hires.plan(job.width, job.height)
    second = _spec(planned[1])
    latent = job.hires.upscaler == "Latent"
    pixels = hires.pixel_upscaler(ctx, reporter)  # a resize or an upscaler model
    first.output_type = "latent" if latent else "np"
    out = run_pass(ctx, first, seeds, subseeds, reporter, extensions)
    uw, uh = plan.upscale_width, plan.upscale_height
    if latent:
        scale = 2 ** (len(ctx.model.components["vae"].config.block_out_channels) - 1)
        second.image = hires.crop_latents(hires.upscale_latents(out, uw, uh, scale), plan, scale)
    elif job.hires.resizes:
        # A1111 resizes to the exact size it computed; the crop keeps whole latent cells.
        ew, eh = plan.exact_width or uw, plan.exact_height or uh
        second.image = hires.crop_pixels(pixels(out, ew, eh, job.hires.upscaler), plan)
    else:
        second.image = pixels(out, uw, uh, job.hires.upscaler)
    if executed_steps(second) < 1:
        if latent:
            raise DreamwireError(
                ErrorCode.INVALID_STRENGTH,
                "Hires.fix denoising strength is too low to run a single step",
                job.job_id,
            )
        return [np.asarray(img) for img in second.image]
    return _to_uint8(run_pass(ctx, second, seeds, subseeds, reporter, extensions))


def _img2img(ctx, reporter, seeds, subseeds, extensions) -> list[np.ndarray]:
    job = ctx.job
    init = masks.resize(masks.to_rgb(job.init_image), *ctx.plan.canvas.picture)
    ctx.canvas = _canvas(ctx, init)
    spec = _spec(ctx.plan.passes[0], Image.fromarray(init))
    reporter.total = ctx.plan.total_steps
    if reporter.total < 1:  # strength ~0: nothing to denoise, the image is the answer
        return [init.copy() for _ in seeds]
    return _to_uint8(run_pass(ctx, spec, seeds, subseeds, reporter, extensions))


def _edit(ctx, reporter, seeds, subseeds, extensions) -> list[np.ndarray]:
    """An edit model (Flux Kontext) redraws the picture, at the job's size, following the
    prompt's instruction; the picture is the model's reference, not a starting point."""
    job = ctx.job
    picture = masks.resize(masks.to_rgb(job.init_image), job.width, job.height)
    spec = _spec(ctx.plan.passes[0], Image.fromarray(picture))
    reporter.total = ctx.plan.total_steps
    return _to_uint8(run_pass(ctx, spec, seeds, subseeds, reporter, extensions))


def _layers(ctx, reporter, seeds, subseeds, extensions) -> list[np.ndarray]:
    """A layered model (Qwen-Image-Layered) splits the picture into `layer_count` RGBA
    layers at its own resolution bucket (640 px), in the pipeline's order (bottom first)."""
    job = ctx.job
    picture = masks.resize(masks.to_rgb(job.init_image), job.width, job.height)
    spec = _spec(ctx.plan.passes[0], Image.fromarray(picture).convert("RGBA"))
    spec.extra["layers"] = job.layer_count
    reporter.total = ctx.plan.total_steps
    (stack,) = run_pass(ctx, spec, seeds, subseeds, reporter, extensions)
    # The model draws at its own bucket (640 px); the host stacks them on the job's canvas.
    return [masks.resize(layer, job.width, job.height) for layer in _to_uint8(np.asarray(stack))]


def _inpaint(ctx, reporter, seeds, subseeds, extensions) -> list[np.ndarray]:
    job = ctx.job
    # The layout, the repaint mask and "only masked"'s crop box are the plan's
    # (canvas/layout.py, which refused an empty mask); the pixels are made here.
    layout = ctx.plan.canvas
    planned = ctx.plan.passes[0]
    gen_w, gen_h = planned.width, planned.height  # the job size, grown by an outpaint
    init = masks.resize(masks.to_rgb(job.init_image), *layout.picture)
    if layout.border.any():
        init, _ = outpaint.grow(init, None, layout.border)
    # ControlNet units lay their images out on this canvas (backend/conditioning/units.py),
    # cropped to the plan's box for "only masked" (ctx.inpaint_region).
    ctx.canvas = _canvas(ctx, init)
    soft = layout.soft
    canvas_w, canvas_h = layout.size

    box = layout.crop
    if box is not None:
        x1, y1, x2, y2 = box
        src, src_mask = init[y1:y2, x1:x2], soft[y1:y2, x1:x2]
    else:
        src, src_mask = init, soft

    gen_mask = masks.resize(src_mask, gen_w, gen_h)
    # A1111 fills at generation size, after the "only masked" crop, under the soft mask.
    # "Only masked" samples a crop: it wraps no tile (planning refuses it with seamless).
    gen_src = masked_content.prepare_pixels(
        job.inpaint_fill,
        masks.resize(src, gen_w, gen_h),
        gen_mask,
        masks.wrap_axes(job.seamless) if box is None else masks.NO_WRAP,
    )
    spec = _spec(
        planned,
        Image.fromarray(gen_src),
        Image.fromarray(gen_mask),
        masked_content=job.inpaint_fill,
    )
    reporter.total = ctx.plan.total_steps
    if reporter.total < 1:
        return [init.copy() for _ in seeds]
    generated = _to_uint8(run_pass(ctx, spec, seeds, subseeds, reporter, extensions))

    out = []
    for img in generated:
        if box is not None:
            full = masks.paste(init, img, box)
        else:
            full = masks.resize(img, canvas_w, canvas_h)
        out.append(masks.composite(init, full, soft))
    return out
