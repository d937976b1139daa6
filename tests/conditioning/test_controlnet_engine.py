"""The engine's ControlNet passes equal diffusers' ControlNet pipelines for the same seed,
windows switch units on at the A1111 steps, and bad ControlNet input fails clearly."""

from __future__ import annotations

import numpy as np
import pytest
from cn_helpers import BASE, SIZE, load_net, maxdiff, noise_image, reference_pipe, run_job_settings
from PIL import Image

from dreamwire.backend.conditioning import control_image
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job
from tests.engine.reference import a1111_steps

CANNY = "control_v11p_sd15_canny"
DEPTH = "control_v11f1p_sd15_depth"
LINEART = "control_v11p_sd15_lineart"  # the diffusers-folder ControlNet


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **kw})


def canny_reference(engine, cn_dir, cls_name="StableDiffusionControlNetPipeline", **kwargs):
    """diffusers' `cls_name` with the canny ControlNet, run with the job's settings."""
    pipe = reference_pipe(engine, cls_name, [load_net(engine, cn_dir / f"{CANNY}.safetensors")])
    return run_job_settings(pipe, **kwargs)


def box_mask(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """A 64 x 64 inpaint mask that repaints one rectangle."""
    mask = np.zeros((64, 64), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


def inpaint_job(init: np.ndarray, mask: np.ndarray, strength: float, unit: ControlUnit) -> Job:
    """An unblurred-mask inpaint job with one ControlNet unit."""
    return job(init_image=init, mask=mask, mask_blur=0, strength=strength, controls=[unit])


@pytest.fixture(scope="module")
def base_image(engine):
    return engine.run(job()).images[0].image


def test_single_controlnet_equals_diffusers(engine, cn_dir, base_image):
    ctl = noise_image(1)
    result = engine.run(job(controls=[ControlUnit(type="canny", image=ctl, weight=0.8)]))
    ref = canny_reference(
        engine,
        cn_dir,
        image=[Image.fromarray(ctl)],
        controlnet_conditioning_scale=[0.8],
        **SIZE,
    )
    out = result.images[0].image
    assert maxdiff(out, ref) <= 1
    assert maxdiff(out, base_image) > 10  # the ControlNet really steers the image


def test_multi_controlnet_equals_diffusers(engine, cn_dir, base_image):
    canny = noise_image(2)
    depth = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)  # host depth, float
    lineart = noise_image(3, c=1)
    units = [
        ControlUnit(type="canny", image=canny, weight=0.7),
        ControlUnit(type="depth", image=depth, weight=1.2),
        ControlUnit(type="lineart", image=lineart, weight=0.5, model=LINEART),
    ]
    result = engine.run(job(controls=units))
    nets = [
        load_net(engine, cn_dir / f"{CANNY}.safetensors"),
        load_net(engine, cn_dir / f"{DEPTH}.safetensors"),
        load_net(engine, cn_dir / LINEART),
    ]
    depth_rgb = np.repeat(np.round(depth * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    images = [
        Image.fromarray(canny),
        Image.fromarray(depth_rgb),
        Image.fromarray(np.repeat(lineart, 3, axis=2)),
    ]
    pipe = reference_pipe(engine, "StableDiffusionControlNetPipeline", nets)
    ref = run_job_settings(
        pipe, image=images, controlnet_conditioning_scale=[0.7, 1.2, 0.5], **SIZE
    )
    assert maxdiff(result.images[0].image, ref) <= 1
    assert maxdiff(result.images[0].image, base_image) > 10


def test_weight_zero_equals_no_controlnet(engine, base_image):
    result = engine.run(job(controls=[ControlUnit(type="canny", image=noise_image(4), weight=0.0)]))
    assert np.array_equal(result.images[0].image, base_image)


@pytest.mark.parametrize(
    ("seed", "window", "active", "diffusers_window"),
    [
        # A1111 keeps a unit at step i of n when start <= i/n <= end. With 4 steps and
        # start 0.5 that is steps 2 and 3, which is also diffusers' rule for start=0.5.
        pytest.param(5, dict(start=0.5), [False, False, True, True], (0.5, 1.0), id="start"),
        # end=0.5 with 4 steps: A1111 runs steps 0, 1 and 2 (2/4 is not past 0.5); diffusers'
        # own rule would stop after step 1, so the equal reference is diffusers' end=0.75.
        pytest.param(6, dict(end=0.5), [True, True, True, False], (0.0, 0.75), id="end"),
    ],
)
def test_window_follows_a1111_and_equals_diffusers(
    engine, cn_dir, seen, seed, window, active, diffusers_window
):
    ctl = noise_image(seed)
    result = engine.run(job(controls=[ControlUnit(type="canny", image=ctl, **window)]))
    assert seen.calls["controlnet"] == [[a] for a in active]
    ref = canny_reference(
        engine,
        cn_dir,
        image=[Image.fromarray(ctl)],
        control_guidance_start=[diffusers_window[0]],
        control_guidance_end=[diffusers_window[1]],
        **SIZE,
    )
    assert maxdiff(result.images[0].image, ref) <= 1


def test_per_unit_windows_in_one_job(engine, seen):
    units = [
        ControlUnit(type="canny", image=noise_image(7), end=0.25),
        ControlUnit(type="depth", image=noise_image(8), start=0.75),
    ]
    engine.run(job(controls=units))
    assert seen.calls["controlnet"] == [
        [True, False],
        [True, False],
        [False, False],
        [False, True],
    ]


def test_control_modes_change_the_image(engine, base_image):
    ctl = noise_image(9)
    outs = {
        mode: engine.run(job(controls=[ControlUnit(type="canny", image=ctl, control_mode=mode)]))
        .images[0]
        .image
        for mode in ("balanced", "prompt", "controlnet")
    }
    assert maxdiff(outs["balanced"], outs["prompt"]) > 0
    assert maxdiff(outs["prompt"], outs["controlnet"]) > 0
    assert all(maxdiff(o, base_image) > 0 for o in outs.values())


def test_img2img_with_controlnet_equals_diffusers(engine, cn_dir):
    init = noise_image(10)
    ctl = noise_image(11)
    result = engine.run(
        job(init_image=init, strength=0.75, controls=[ControlUnit(type="canny", image=ctl)])
    )
    ref = canny_reference(
        engine,
        cn_dir,
        cls_name="StableDiffusionControlNetImg2ImgPipeline",
        image=Image.fromarray(init),
        **a1111_steps(4, 0.75),  # A1111's img2img: all 4 steps, from the top
        control_image=[Image.fromarray(ctl)],
        controlnet_conditioning_scale=[1.0],
    )  # default 0.8
    assert maxdiff(result.images[0].image, ref) <= 1


def test_inpaint_controlnet_gets_masked_pixels_minus_one(engine, seen):
    init = noise_image(12)
    mask = box_mask(16, 48, 16, 48)
    result = engine.run(inpaint_job(init, mask, 1.0, ControlUnit(type="inpaint", image=init)))
    assert result.images[0].image.shape == (64, 64, 3)
    assert seen.calls["controlnet"] and all(a == [True] for a in seen.calls["controlnet"])


def test_hires_fix_gets_control_at_the_larger_size(engine, seen):
    ctl = noise_image(13)
    result = engine.run(
        job(
            hires=HiresFix(scale=1.5, denoise=0.5, upscaler="Latent"),
            controls=[ControlUnit(type="canny", image=ctl)],
        )
    )
    assert result.images[0].image.shape == (96, 96, 3)
    stack = seen.stacks["controlnet"]
    assert stack.units[0].force_soft  # A1111 forces soft injection for canny in the hires pass


def test_sdxl_controlnet_on_sdxl(engine):
    result = engine.run(
        job(model="tiny-sdxl", controls=[ControlUnit(type="depth", image=noise_image(14))])
    )
    base = engine.run(job(model="tiny-sdxl"))
    assert maxdiff(result.images[0].image, base.images[0].image) > 0


def test_wrong_architecture_fails_before_generating(engine):
    seen = []
    with pytest.raises(DreamwireError) as err:
        engine.run(
            job(
                controls=[
                    ControlUnit(
                        type="depth", image=noise_image(15), model="diffusers_xl_depth_full"
                    )
                ]
            ),
            on_progress=seen.append,
        )
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "SDXL" in err.value.message and "diffusers_xl_depth_full" in err.value.message
    assert not any(p.step > 0 for p in seen)  # nothing was denoised
    with pytest.raises(DreamwireError) as err:
        engine.run(
            job(
                model="tiny-sdxl",
                controls=[ControlUnit(type="canny", image=noise_image(15), model=CANNY)],
            )
        )
    assert err.value.code == ErrorCode.MODEL_MISMATCH


def test_no_controlnet_of_that_type_for_the_model(engine):
    # No SDXL shuffle ControlNet, and the Union models have no shuffle mode.
    with pytest.raises(DreamwireError) as err:
        engine.run(
            job(model="tiny-sdxl", controls=[ControlUnit(type="shuffle", image=noise_image(16))])
        )
    assert err.value.code == ErrorCode.CONTROLNET_NOT_FOUND
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[ControlUnit(type="canny", image=noise_image(16), model="nope")]))
    assert err.value.code == ErrorCode.CONTROLNET_NOT_FOUND


def test_control_image_of_another_size_is_resized_by_policy(engine):
    ctl = noise_image(17, h=96, w=128)  # 4:3, the job is square
    a = engine.run(
        job(controls=[ControlUnit(type="canny", image=ctl, resize_mode="crop_and_resize")])
    )
    cropped = control_image.resize(ctl, 64, 64, "crop_and_resize")
    b = engine.run(job(controls=[ControlUnit(type="canny", image=cropped)]))
    assert np.array_equal(a.images[0].image, b.images[0].image)
    c = engine.run(job(controls=[ControlUnit(type="canny", image=ctl, resize_mode="just_resize")]))
    assert maxdiff(a.images[0].image, c.images[0].image) > 0


def test_wrong_channel_count_is_a_clear_error(engine):
    bad = np.zeros((64, 64, 2), np.uint8)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[ControlUnit(type="canny", image=bad)]))
    assert err.value.code == ErrorCode.INVALID_IMAGE
    assert "1|3|4" in err.value.message or "1, 3 or 4" in err.value.message


def test_inpaint_with_controlnet_equals_diffusers_then_overlay(engine, cn_dir):
    from dreamwire.backend.canvas.masks import composite

    init = noise_image(20)
    ctl = noise_image(21)
    mask = box_mask(16, 48, 20, 44)
    result = engine.run(
        inpaint_job(init, mask, 0.7, ControlUnit(type="canny", image=ctl, weight=0.9))
    )
    ref = canny_reference(
        engine,
        cn_dir,
        cls_name="StableDiffusionControlNetInpaintPipeline",
        image=Image.fromarray(init),
        mask_image=Image.fromarray(mask),
        control_image=[Image.fromarray(ctl)],
        **a1111_steps(4, 0.7),  # A1111's inpaint: int(0.7 * 4) + 1 = 3 steps of 4
        controlnet_conditioning_scale=[0.9],
        **SIZE,
    )
    assert maxdiff(result.images[0].image, composite(init, ref, mask)) <= 1


def test_sdxl_img2img_and_inpaint_with_controlnet(engine):
    init = noise_image(22)
    mask = box_mask(8, 40, 8, 40)
    unit = ControlUnit(type="depth", image=noise_image(23))
    a = engine.run(job(model="tiny-sdxl", init_image=init, strength=0.7, controls=[unit]))
    b = engine.run(
        job(model="tiny-sdxl", init_image=init, mask=mask, strength=0.9, controls=[unit])
    )
    assert a.images[0].image.shape == b.images[0].image.shape == (64, 64, 3)


def test_model_named_with_its_file_extension(engine, base_image):
    unit = ControlUnit(type="canny", image=noise_image(30), model=f"{CANNY}.safetensors")
    assert maxdiff(engine.run(job(controls=[unit])).images[0].image, base_image) > 0
