"""Engine features beyond the plain modes: seamless, tiled VAE, Hires.fix, seeds, clip
skip, VAE swap, outpaint, only-masked inpaint, previews and cancellation."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import a1111_steps, maxdiff, reference_pipe, run, to_uint8

from dreamwire.backend.engine import Conditioner, PassPart
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import HiresFix, Job, Outpaint


def job(**kw) -> Job:
    base = dict(
        prompt="weathered stone",
        negative="",
        sampler="Euler",
        steps=4,
        width=64,
        height=64,
        seed=99,
    )
    base.update(kw)
    return Job(**base)


# job()'s settings in diffusers' words (its negative prompt is empty).
PIPE_ARGS = dict(prompt="weathered stone", num_inference_steps=4, guidance_scale=7.0)


class StepSpy(Conditioner):
    """A conditioner with only a step hook, attached to every pass."""

    name = "test.step"

    def __init__(self, hook):
        self.hook = hook

    def resolve(self, ctx):
        return True

    @contextmanager
    def attach(self, ctx, resolved, mode):
        yield PassPart(step_hook=self.hook)


class RollLatents(StepSpy):
    """Rolls the latents sideways after the first step. Where the model is a torus
    (seamless), the rest of the run is shift-equivariant, so the final image is exactly
    the unrolled image rolled by the same amount: its edges continue each other."""

    def __init__(self, dx: int = 0, dy: int = 0):
        def hook(ctx_, pipe, step, total, tensors):
            if step == 1:
                return {"latents": torch.roll(tensors["latents"], (dy, dx), dims=(2, 3))}
            return None

        super().__init__(hook)


def _rolled_run(engine, axes: str, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    plain = engine.run(job(seamless=axes)).images[0].image
    saved = engine.extensions
    engine.extensions = [RollLatents(dx, dy)]
    try:
        rolled = engine.run(job(seamless=axes)).images[0].image
    finally:
        engine.extensions = saved
    return plain, rolled


def _shift_error(a: np.ndarray, b: np.ndarray, dx_px: int, dy_px: int) -> float:
    return float(np.abs(np.roll(a, (dy_px, dx_px), axis=(0, 1)).astype(float) - b).mean())


def test_seamless_both_axes_wraps_around(engine):
    plain, rolled = _rolled_run(engine, "both", dx=4, dy=2)
    assert _shift_error(plain, rolled, 32, 16) < 1.0
    # Without seamless the same roll leaves a visible seam: the image is no torus.
    plain0, rolled0 = _rolled_run(engine, "none", dx=4, dy=2)
    assert _shift_error(plain0, rolled0, 32, 16) > 5.0


def test_seamless_one_axis(engine):
    plain, rolled = _rolled_run(engine, "x", dx=4, dy=0)
    assert _shift_error(plain, rolled, 32, 0) < 1.0
    plain_y, rolled_y = _rolled_run(engine, "x", dx=0, dy=4)
    assert _shift_error(plain_y, rolled_y, 0, 32) > 5.0  # y keeps zero padding


def test_seamless_leaves_cached_model_unpatched(engine):
    engine.run(job(seamless="both"))
    unet = engine.load("tiny-sd1").components["unet"]
    convs = [m for m in unet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all("_conv_forward" not in vars(m) for m in convs)
    assert (
        maxdiff(engine.run(job()).images[0].image, engine.run(job(seamless="both")).images[0].image)
        > 10
    )


def test_tiled_vae_close_to_untiled(engine):
    big = dict(width=128, height=128)
    untiled = engine.run(job(tiled_vae=False, **big)).images[0].image.astype(float)
    saved = engine.vae_tile_px
    engine.vae_tile_px = 64  # tiles of 64 px over a 128 px image: 4 tiles with overlap
    try:
        tiled = engine.run(job(tiled_vae=True, **big)).images[0].image.astype(float)
    finally:
        engine.vae_tile_px = saved
    other = engine.run(job(tiled_vae=False, seed=100, **big)).images[0].image.astype(float)
    assert np.abs(tiled - untiled).mean() > 0  # tiling did happen
    assert np.abs(tiled - untiled).mean() < 0.3 * np.abs(other - untiled).mean()
    vae = engine.load("tiny-sd1").components["vae"]
    assert vae.use_tiling is False  # restored after the job


def test_tiled_vae_is_automatic_for_large_textures():
    from dreamwire.backend.engine.tiled_vae import should_tile

    assert should_tile(None, 4096, 4096, low_vram=False, seamless="none")
    assert not should_tile(None, 512, 512, low_vram=False, seamless="none")
    assert should_tile(None, 512, 512, low_vram=True, seamless="none")
    assert not should_tile(False, 4096, 4096, low_vram=True, seamless="none")


def test_hires_fix_latent_equals_two_diffusers_passes(engine):
    events = []
    hires = HiresFix(scale=2.0, denoise=0.5, upscaler="Latent")
    result = engine.run(job(hires=hires), on_progress=events.append)
    out = result.images[0].image
    assert out.shape == (128, 128, 3)
    # First pass 4 steps; A1111's hires pass runs all its 4 steps (over an 8-step schedule,
    # 4 / 0.5), where diffusers' own img2img would run 2: reported as one job of 8.
    steps = [e.step for e in events if e.state == "generating" and e.step]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8] and events[-1].total == 8

    t2i = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    i2i = reference_pipe(engine, "StableDiffusionImg2ImgPipeline", "Euler")
    with torch.inference_mode():
        lat = t2i(
            **PIPE_ARGS,
            width=64,
            height=64,
            generator=torch.Generator().manual_seed(99),
            output_type="latent",
        ).images
        up = F.interpolate(lat, size=(16, 16), mode="bilinear", antialias=False)
        ref = i2i(
            **{**PIPE_ARGS, **a1111_steps(4, 0.5, fixed=True)},
            image=up,
            generator=torch.Generator().manual_seed(99),
            output_type="np",
        ).images
    assert maxdiff(out, to_uint8(ref)[0]) <= 1
    info = parse_infotext(result.images[0].infotext)
    assert (info.width, info.height) == (64, 64)  # A1111 writes the first-pass size
    assert info.hires_upscale == 2.0 and info.hires_upscaler == "Latent"
    assert info.denoising_strength == 0.5


def test_hires_fix_lanczos_size(engine):
    result = engine.run(job(hires=HiresFix(scale=1.5, denoise=0.6, upscaler="Lanczos")))
    assert result.images[0].image.shape == (96, 96, 3)


def test_variation_seed(engine):
    base = engine.run(job()).images[0].image
    other = engine.run(job(seed=7)).images[0].image
    half = engine.run(job(subseed=7, subseed_strength=0.5))
    full = engine.run(job(subseed=7, subseed_strength=1.0)).images[0].image
    img = half.images[0].image
    assert maxdiff(img, base) > 10 and maxdiff(img, other) > 10
    assert maxdiff(full, other) <= 2  # strength 1: all subseed noise
    info = parse_infotext(half.images[0].infotext)
    assert info.seed == 99 and info.variation_seed == 7 and info.variation_seed_strength == 0.5


def test_variation_seed_img2img(engine, init_image):
    plain = engine.run(job(init_image=init_image, strength=0.7)).images[0].image
    varied = engine.run(job(init_image=init_image, strength=0.7, subseed=3, subseed_strength=0.4))
    assert maxdiff(plain, varied.images[0].image) > 5


def test_random_seed_is_resolved_and_reported(engine):
    result = engine.run(job(seed=-1, batch=2))
    s = result.images[0].seed
    assert 0 <= s < 2**32 and result.images[1].seed == (s + 1) % 2**32
    again = engine.run(job(seed=s)).images[0].image
    assert maxdiff(again, result.images[0].image) <= 1
    assert parse_infotext(result.images[0].infotext).seed == s


def test_clip_skip_changes_output(engine):
    one = engine.run(job()).images[0]
    two = engine.run(job(clip_skip=2)).images[0]
    assert maxdiff(one.image, two.image) > 5
    assert parse_infotext(two.infotext).clip_skip == 2


def test_vae_swap_uses_the_other_vae(engine):
    own = engine.run(job()).images[0].image
    swapped = engine.run(job(vae="tiny-vae"))
    assert maxdiff(own, swapped.images[0].image) > 5
    ref_pipe = reference_pipe(engine, "StableDiffusionPipeline", "Euler", vae="tiny-vae")
    assert ref_pipe.vae is not engine.load("tiny-sd1").components["vae"]
    ref = run(ref_pipe, 99, **PIPE_ARGS, width=64, height=64)[0]
    assert maxdiff(swapped.images[0].image, ref) <= 1
    assert parse_infotext(swapped.images[0].infotext).vae == "tiny-vae"
    # The checkpoint's own VAE is still in place for the next job.
    assert maxdiff(engine.run(job()).images[0].image, own) == 0


def test_outpaint_grows_canvas_and_keeps_original(engine, init_image):
    result = engine.run(
        job(init_image=init_image, outpaint=Outpaint(right=16, top=8), strength=1.0, mask_blur=0)
    )
    out = result.images[0].image
    assert out.shape == (72, 80, 3)
    assert np.array_equal(out[8:, :64], init_image)
    assert out[:, 64:].std() > 1


def test_only_masked_inpaint_keeps_full_image_size(engine):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[40:56, 60:76] = 255
    result = engine.run(
        job(
            init_image=big,
            mask=mask,
            inpaint_full_res=True,
            inpaint_padding=8,
            mask_blur=2,
            strength=0.9,
        )
    )
    out = result.images[0].image
    assert out.shape == big.shape
    far = np.ones_like(mask, bool)
    far[30:66, 50:86] = False
    assert np.array_equal(out[far], big[far])
    assert maxdiff(out[mask > 0], big[mask > 0]) > 10
    info = parse_infotext(result.images[0].infotext)
    assert info.extras.get("Inpaint area") == "Only masked" and info.mask_blur == 2


def test_progress_and_previews(engine):
    events = []
    engine.run(job(preview_every=2, steps=4), on_progress=events.append)
    states = [e.state for e in events]
    assert states[0] == "generating" and "decoding" in states
    previews = [e for e in events if e.preview is not None]
    assert [e.step for e in previews] == [2, 4]
    assert previews[0].preview.dtype == np.uint8 and previews[0].preview.shape[2] == 3


def test_cancel_mid_job(engine):
    events = []

    def cancel():
        return any(e.step >= 2 for e in events)

    with pytest.raises(DreamwireError) as err:
        engine.run(job(steps=8, seamless="both"), on_progress=events.append, should_cancel=cancel)
    assert err.value.code == ErrorCode.CANCELLED
    assert max(e.step for e in events) == 2
    unet = engine.load("tiny-sd1").components["unet"]
    assert all("_conv_forward" not in vars(m) for m in unet.modules())
    assert engine.run(job()).images  # the engine is still usable


def test_low_vram_mode_keeps_sdpa_off_mps_and_slices_on_mps(library, engine):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.engine.device import DeviceInfo
    from dreamwire.backend.engine.lowvram import low_vram

    seen = []

    def hook(ctx_, pipe, step, total, tensors):
        seen.append({type(p) for p in pipe.unet.attn_processors.values()})

    # SDPA's memory-efficient kernels hold less than slices do (bench/bench_lowvram.py).
    small = Engine(library, device="cpu", low_vram=True, extensions=[StepSpy(hook)])
    out = small.run(job(tiled_vae=False)).images[0].image
    assert seen and all(s == {AttnProcessor2_0} for s in seen)
    # Same maths (the shared engine's model may run other kernels after earlier tests: 1 level).
    assert maxdiff(out, engine.run(job(tiled_vae=False)).images[0].image) <= 1

    # MPS's SDPA is the math kernel: there attention is sliced (ControlNets too), then restored.
    parts = small.load("tiny-sd1").components
    net = ControlNetModel.from_unet(parts["unet"])
    names = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
    pipe = StableDiffusionControlNetPipeline(
        **{k: parts[k] for k in names},
        controlnet=net,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )

    class Own(AttnProcessor2_0):  # an extension's processor (IP-Adapter's, say)
        pass

    own_name = next(iter(net.attn_processors))
    net.set_attn_processor({**net.attn_processors, own_name: Own()})
    before = [dict(m.attn_processors) for m in (pipe.unet, net)]
    with low_vram(pipe, DeviceInfo(torch.device("mps"), torch.float32), True):
        assert {type(p) for p in pipe.unet.attn_processors.values()} == {SlicedAttnProcessor}
        procs = net.attn_processors
        assert type(procs.pop(own_name)) is Own  # left in place, not silently replaced
        assert {type(p) for p in procs.values()} == {SlicedAttnProcessor}
    assert [dict(m.attn_processors) for m in (pipe.unet, net)] == before


def test_loading_is_reported_once_and_capabilities(library):
    from dreamwire.backend.engine import Engine

    fresh = Engine(library, device="cpu", extensions=[])
    caps = fresh.capabilities()
    assert caps["device"] == "cpu" and "tiny-sd1" in caps["models"] and "tiny-vae" in caps["vaes"]
    assert "DPM++ 2M Karras" in caps["samplers"] and "Euler a" in caps["samplers"]
    first, second = [], []
    fresh.run(job(), on_progress=first.append)
    fresh.run(job(), on_progress=second.append)
    assert first[0].state == "loading_model" and "tiny-sd1" in first[0].message
    assert "loading_model" not in [e.state for e in second]
