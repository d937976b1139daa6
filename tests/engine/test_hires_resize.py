"""Hires.fix "Resize width/height to" through the engine: output size, A1111's latent
crop (checked against two diffusers passes), infotext."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from reference import a1111_steps, maxdiff, reference_pipe, to_uint8

from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import HiresFix, Job

PIPE_ARGS = dict(prompt="weathered stone", num_inference_steps=4, guidance_scale=7.0)


def job(**kw) -> Job:
    base = dict(prompt="weathered stone", sampler="Euler", steps=4, width=64, height=48, seed=99)
    base.update(kw)
    return Job(**base)


def test_resize_both_sides_crops_latents_like_a1111(engine):
    # 64x48 covers 128x128 at 170x128 (21 latent columns); A1111 drops (170-128)//8 = 5
    # columns: 2 on the left, 3 on the right.
    hires = HiresFix(width=128, height=128, denoise=0.5, upscaler="Latent")
    result = engine.run(job(hires=hires))
    out = result.images[0].image
    assert out.shape == (128, 128, 3)

    t2i = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    i2i = reference_pipe(engine, "StableDiffusionImg2ImgPipeline", "Euler")
    with torch.inference_mode():
        lat = t2i(
            **PIPE_ARGS,
            width=64,
            height=48,
            generator=torch.Generator().manual_seed(99),
            output_type="latent",
        ).images
        up = F.interpolate(lat, size=(16, 21), mode="bilinear", antialias=False)
        ref = i2i(
            # A1111's Hires.fix: all 4 steps, over a 4 / 0.5 = 8-step schedule.
            **{**PIPE_ARGS, **a1111_steps(4, 0.5, fixed=True)},
            image=up[:, :, :, 2:18],
            generator=torch.Generator().manual_seed(99),
            output_type="np",
        ).images
    assert maxdiff(out, to_uint8(ref)[0]) <= 1

    info = parse_infotext(result.images[0].infotext)
    assert (info.width, info.height) == (64, 48)  # the first pass, as A1111 writes it
    assert info.hires_resize == (128, 128) and info.hires_upscale is None
    assert "Hires upscale:" not in result.images[0].infotext


def test_resize_one_side_follows_aspect_and_pixels_crop(engine):
    wide = engine.run(job(hires=HiresFix(width=96, denoise=0.5, upscaler="Lanczos")))
    assert wide.images[0].image.shape == (72, 96, 3)  # 96 * 48 // 64 = 72
    assert parse_infotext(wide.images[0].infotext).hires_resize == (96, 0)
    cropped = engine.run(job(hires=HiresFix(width=80, height=80, upscaler="Nearest")))
    assert cropped.images[0].image.shape == (80, 80, 3)


def test_capabilities_tell_hosts_each_models_family(engine):
    caps = engine.capabilities()
    families = caps["model_families"]
    assert families["tiny-sd1"] == "sd1" and families["tiny-sdxl"] == "sdxl"
    assert set(families) == set(caps["models"])
    assert caps["default_model"] in caps["models"]


def test_pixel_upscale_resizes_exactly_then_keeps_whole_latent_cells(engine):
    # 64x48 to width 104: A1111's hr_upscale_to_y is 104 * 48 // 64 = 78; it resizes the
    # pixels to 104x78 and its VAE encodes the top 9 whole cells (72 rows).
    hires = HiresFix(width=104, denoise=0.5, upscaler="Lanczos")
    out = engine.run(job(hires=hires)).images[0].image
    assert out.shape == (72, 104, 3)

    t2i = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    i2i = reference_pipe(engine, "StableDiffusionImg2ImgPipeline", "Euler")
    with torch.inference_mode():
        first = t2i(
            **PIPE_ARGS,
            width=64,
            height=48,
            generator=torch.Generator().manual_seed(99),
            output_type="np",
        ).images
        pil = Image.fromarray(to_uint8(first)[0]).resize((104, 78), Image.LANCZOS)
        ref = i2i(
            **{**PIPE_ARGS, **a1111_steps(4, 0.5, fixed=True)},  # A1111's Hires.fix steps
            image=pil.crop((0, 0, 104, 72)),
            generator=torch.Generator().manual_seed(99),
            output_type="np",
        ).images
    assert maxdiff(out, to_uint8(ref)[0]) <= 1
