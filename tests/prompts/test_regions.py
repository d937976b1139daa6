"""Regional prompts: the Latent Couple extension's maths (two_shot.py) on composable diffusion.

uncond + sum_i f_i * (cond_i - uncond) * w_i * cfg, with f = [1 - sum of the region filters,
mask_1 * weight_1, ...] resized to the latent grid with nearest-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.backend.engine import regions
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import MAX_REGIONS, ControlUnit, HiresFix, Job, Region, Upscale
from tests.support.engines import cpu_engine

FULL = np.full((64, 64), 255, np.uint8)
EMPTY = np.zeros((64, 64), np.uint8)
LEFT = np.zeros((64, 64), np.uint8)
LEFT[:, :32] = 255

# -- the job, its validation and the wire ------------------------------------------------


def test_regions_travel_as_frames_and_come_back():
    soft = np.linspace(0, 255, 32 * 32).astype(np.uint8).reshape(32, 32)
    half = np.ascontiguousarray(LEFT[::2, ::2])  # 32 x 32 over a 64 x 64 job
    job = Job(
        prompt="a farm",
        width=64,
        height=64,
        regions=[Region("a red barn", half), Region("a cornfield :1.2", soft, 0.8)],
    )
    limits = P.Limits(max_message_bytes=2**20, max_pixels=2**20, max_images=8)
    for fmt in ("raw", "png"):
        back = P.parse_submit(P.decode(P.encode(P.submit_message(job.validate()), fmt), limits))
        assert [(r.prompt, r.weight) for r in back.regions] == [
            ("a red barn", 1.0),
            ("a cornfield :1.2", 0.8),
        ]
        np.testing.assert_array_equal(back.regions[0].mask, job.regions[0].mask)
        np.testing.assert_array_equal(back.regions[1].mask, soft)
        assert back.regions[1].mask.dtype == np.uint8


def _bad(**kw) -> Job:
    base = dict(prompt="a farm", width=64, height=64, regions=[Region("a barn", LEFT)])
    return Job(**{**base, **kw})


BAD = {
    "too many": _bad(regions=[Region(f"r{i}", LEFT) for i in range(MAX_REGIONS + 1)]),
    "no prompt": _bad(regions=[Region("  ", LEFT)]),
    "AND in a region": _bad(regions=[Region("a barn AND a cow", LEFT)]),
    "AND in the background": _bad(prompt="a farm AND a sky"),
    "AND in the hires prompt": _bad(hires=HiresFix(prompt="x AND y")),
    "network tag": _bad(regions=[Region("a barn <lora:wood:0.5>", LEFT)]),
    "weight above 1": _bad(regions=[Region("a barn", LEFT, 1.5)]),
    "negative weight": _bad(regions=[Region("a barn", LEFT, -0.1)]),
    "weight not a number": _bad(regions=[Region("a barn", LEFT, "1")]),
    "bool weight": _bad(regions=[Region("a barn", LEFT, True)]),
    "float mask": _bad(regions=[Region("a barn", LEFT.astype(np.float32))]),
    "rgb mask": _bad(regions=[Region("a barn", np.stack([LEFT] * 3, axis=2))]),
    "no mask": _bad(regions=[Region("a barn", None)]),
    "other shape": _bad(regions=[Region("a barn", np.zeros((64, 96), np.uint8))]),
    "sizes differ": _bad(regions=[Region("a", LEFT), Region("b", LEFT[::2, ::2])]),
    "upscale": _bad(
        init_image=np.zeros((64, 64, 3), np.uint8), upscale=Upscale(scale=2.0, refine=True)
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_regions_are_invalid_region(name):
    with pytest.raises(DreamwireError) as err:
        BAD[name].validate()
    assert err.value.code == ErrorCode.INVALID_REGION


def test_mask_of_another_size_but_the_same_shape_is_fine():
    """Masks are stretched like Latent Couple's canvas; the shape must be the result's: an
    outpainted inpaint job's is the grown canvas."""
    _bad(regions=[Region("a", np.zeros((31, 31), np.uint8))]).validate()
    grown = _bad(
        init_image=np.zeros((64, 64, 3), np.uint8),
        mask=FULL,
        regions=[Region("a", np.zeros((64, 128), np.uint8))],
    )
    grown.outpaint.right = 64
    assert grown.region_area() == (128, 64)
    grown.validate()


def test_unknown_region_fields_are_refused_on_the_wire():
    body, arrays = _bad().to_wire()
    body["regions"][0]["feather"] = 3
    with pytest.raises(DreamwireError) as err:
        Job.from_wire(body, arrays)
    assert err.value.code == ErrorCode.INVALID_JOB


# -- filters ---------------------------------------------------------------------------


def test_filters_follow_latent_couple():
    """Background 1 - sum (negative where regions overlap, never normalised); each region
    mask * weight; soft masks scale."""
    a = np.zeros((4, 4), np.uint8)
    a[:, :3] = 255
    b = np.zeros((4, 4), np.uint8)
    b[:, 2:] = 255
    b[0, 3] = 51  # 0.2
    f = regions.area_filters([Region("a", a, 0.8), Region("b", b, 0.5)]).numpy()
    assert f.shape == (3, 4, 4)
    np.testing.assert_allclose(f[1, 0], [0.8, 0.8, 0.8, 0])
    np.testing.assert_allclose(f[2, 0], [0, 0, 0.5, 0.1])
    np.testing.assert_allclose(f[0, 0], [0.2, 0.2, -0.3, 0.9], atol=1e-6)


def test_filters_reach_the_latent_grid_nearest_exact():
    """torch's nearest-exact (pixel centres), as two_shot's MaskFilter: with 3 mask pixels
    per latent cell it reads each cell's middle pixel (plain nearest would read the first)."""
    mask = np.zeros((24, 24), np.uint8)
    mask[:, 1::3] = 255
    latent = regions.to_latent(regions.area_filters([Region("a", mask)]), 8, 8)
    assert torch.equal(latent[1], torch.ones(8, 8))
    assert torch.equal(latent[0], torch.zeros(8, 8))


def test_only_masked_crop_cuts_the_filters():
    mask = np.zeros((32, 32), np.uint8)
    mask[16:, 16:] = 255
    f = regions.area_filters([Region("a", mask)])
    # A 64x64 canvas, the pass covers its bottom-right quarter: the region fills it.
    cut = regions.crop(f, (32, 32, 64, 64), (64, 64))
    assert cut.shape == (2, 16, 16) and torch.equal(cut[1], torch.ones(16, 16))


# -- the engine --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_models):
    return cpu_engine(tiny_models, cache_size=None)


BASE = dict(negative="blurry", steps=3, sampler="Euler", width=64, height=64, seed=11)


def _run(engine, prompt: str, regs=(), **kw):
    return engine.run(Job(**{**BASE, "prompt": prompt, "regions": list(regs), **kw}))


def _images(engine, prompt: str, regs=(), **kw) -> list[np.ndarray]:
    return [img.image.astype(np.int16) for img in _run(engine, prompt, regs, **kw).images]


def _maxdiff(a, b) -> int:
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


def test_whole_image_region_is_the_and_prompt(engine):
    """A region over everything: background 1 - w, region w, exactly the AND prompt with
    those weights (same UNet batch, same sums); a mask of another size too."""
    barn = [Region("a red barn", FULL)]
    assert np.array_equal(
        _images(engine, "a farm", barn), _images(engine, "a farm :0 AND a red barn")
    )
    half = [Region("a red barn", np.full((16, 16), 255, np.uint8), 0.5)]
    assert np.array_equal(
        _images(engine, "a farm", half), _images(engine, "a farm :0.5 AND a red barn :0.5")
    )


def test_empty_region_changes_nothing(engine):
    got = _images(engine, "a farm", [Region("a red barn", EMPTY)])
    assert np.array_equal(got, _images(engine, "a farm AND a red barn :0"))
    assert _maxdiff(got, _images(engine, "a farm")) <= 1


def _reference(engine, texts, filters, cfg: float, seed: int, steps: int, negative="blurry"):
    """The denoising loop by hand: every subprompt's term times its filter on the 8 x 8
    latent grid (Latent Couple's cfg_denoised step, then A1111's combine_denoised)."""
    from dreamwire.backend.samplers import make_scheduler
    from dreamwire.backend.text_encoding import PromptEncoder

    comps = engine.load("tiny-sd1").components
    unet, vae = comps["unet"], comps["vae"]
    enc = PromptEncoder.from_components(comps["tokenizer"], comps["text_encoder"])
    sched = make_scheduler("Euler", comps["scheduler"].config)
    with torch.inference_mode():
        uncond = enc.encode([negative])[0].embeds
        conds = [e.embeds for e in enc.encode(texts)]
        sched.set_timesteps(steps)
        gen = torch.Generator("cpu").manual_seed(seed)
        latents = torch.randn((1, 4, 8, 8), generator=gen) * sched.init_noise_sigma
        for t in sched.timesteps:
            x = sched.scale_model_input(latents, t)
            out = unet(
                torch.cat([x] * (1 + len(conds))),
                t,
                encoder_hidden_states=torch.cat([uncond, *conds]),
            ).sample
            u = out[:1]
            denoised = u.clone()
            for i, f in enumerate(filters):
                cond = out[1 + i : 2 + i]
                denoised = denoised + (cond * f + u * (1 - f) - u) * cfg
            latents = sched.step(denoised, t, latents).prev_sample
        image = vae.decode(latents / vae.config.scaling_factor).sample
    image = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return (image * 255).round().astype(np.int16)


def test_half_mask_follows_latent_couple(engine):
    """The left half is "a red barn" at weight 0.8, the background keeps 0.2 there and all
    of the right half."""
    got = _images(engine, "a farm", [Region("a red barn", LEFT, 0.8)])[0]
    region = torch.zeros(8, 8)
    region[:, :4] = 0.8
    ref = _reference(engine, ["a farm", " a red barn"], [1 - region, region], 7.0, 11, 3)
    assert _maxdiff(got, ref) <= 1
    whole = _images(engine, "a farm :0.2 AND a red barn :0.8")[0]
    assert _maxdiff(got, whole) > 3  # the mask mattered
    # The right half is the background alone, up to what the left half spills into it.
    farm = _images(engine, "a farm")[0]
    assert _maxdiff(got[:, 48:], farm[:, 48:]) < _maxdiff(got[:, :16], farm[:, :16])


def test_batch_two_and_infotext(engine):
    regs = [Region("a red barn", LEFT, 0.8), Region("a cornfield, golden", 255 - LEFT)]
    result = _run(engine, "a farm", regs, batch=2)
    second = _images(engine, "a farm", regs, seed=12)[0]
    assert _maxdiff(result.images[1].image, second) <= 1
    info = parse_infotext(result.images[0].infotext)
    assert info.prompt == "a farm"
    assert info.extras["Regions"] == "2"
    assert info.extras["Region 1"] == "a red barn" and info.extras["Region 1 weight"] == "0.8"
    assert info.extras["Region 2"] == "a cornfield, golden" and "Region 2 weight" not in info.extras


def test_hires_pass_gets_the_masks_at_its_size(engine, monkeypatch):
    sizes = []
    to_latent = regions.to_latent

    def spy(filters, height, width):
        sizes.append((height, width))
        return to_latent(filters, height, width)

    monkeypatch.setattr(regions, "to_latent", spy)
    hires = HiresFix(scale=2.0, denoise=0.5, steps=2, upscaler="Latent")
    _images(engine, "a farm", [Region("a red barn", LEFT)], steps=2, hires=hires)
    assert sorted(set(sizes)) == [(8, 8), (16, 16)]


def test_img2img_inpaint_and_controlnet_keep_the_equivalence(engine):
    rng = np.random.default_rng(3)
    init = np.ascontiguousarray(
        rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    )
    unit = ControlUnit(type="canny", image=init, control_mode="controlnet")
    barn = [Region("a red barn", FULL, 0.5)]
    for kw in (
        dict(init_image=init, strength=0.7, controls=[unit]),
        dict(init_image=init, mask=LEFT, strength=0.9, inpaint_full_res=True),
    ):
        got = _images(engine, "a farm", barn, **kw)
        assert np.array_equal(got, _images(engine, "a farm :0.5 AND a red barn :0.5", **kw))


def test_sdxl_region(engine):
    half = [Region("a red barn", FULL, 0.5)]
    got = _images(engine, "a farm", half, model="tiny-sdxl", steps=2)
    want = _images(engine, "a farm :0.5 AND a red barn :0.5", model="tiny-sdxl", steps=2)
    assert np.array_equal(got, want)
    left = _images(engine, "a farm", [Region("a red barn", LEFT)], model="tiny-sdxl", steps=2)
    assert _maxdiff(left, got) > 3
