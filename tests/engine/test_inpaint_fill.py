"""A1111's inpaint "Masked content" modes (fill, original, latent noise, latent nothing):
what the UNet sees in the masked area at the first step, the untouched rest of the
output, the infotext key, the outpaint border fill, and bad names."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import maxdiff

from dreamwire.backend.canvas import masks, outpaint
from dreamwire.backend.cli import build_parser
from dreamwire.backend.cli.generate import build_job
from dreamwire.backend.engine.noise import initial_noise
from dreamwire.backend.samplers import make_scheduler
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import INPAINT_FILLS, Job, Outpaint

SEED = 321


def job(**kw) -> Job:
    # Strength 0.6: A1111 runs int(0.6 * 4) + 1 = 3 of the 4 steps, so the first UNet input
    # (t = 501) still shows the picture under the noise. (At 0.75 A1111 runs all 4, from
    # t = 751, where the picture barely shows.)
    base = dict(
        prompt="old plaster", sampler="DDIM", steps=4, strength=0.6, width=64, height=64, seed=SEED
    )
    return Job(**{**base, **kw})


@pytest.fixture
def hole() -> np.ndarray:
    # Aligned to the 8-pixel latent grid: latent cells rows 2..5, columns 2..4.
    m = np.zeros((64, 64), np.uint8)
    m[16:48, 16:40] = 255
    return m


@pytest.fixture
def latent_hole(hole) -> np.ndarray:
    return hole[::8, ::8] > 127  # what the pipeline's nearest downscale of its mask keeps


@contextmanager
def first_unet_input(engine, model: str = "tiny-sd1"):
    """Records the latents and timestep of the UNet's first call in the block."""
    seen: dict = {}
    unet = engine.load(model).components["unet"]

    def hook(module, args, kwargs):
        if "sample" not in seen:
            seen["sample"] = (args[0] if args else kwargs["sample"]).detach().clone()
            t = args[1] if len(args) > 1 else kwargs["timestep"]
            seen["t"] = int(torch.as_tensor(t).flatten()[0])

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def unet_start(engine, model: str = "tiny-sd1", **kw) -> tuple[torch.Tensor, int]:
    """The first UNet input of image 0 (or of all images, for a batch) and its timestep."""
    with first_unet_input(engine, model) as seen:
        engine.run(job(model=model, mask_blur=0, **kw))
    batch = kw.get("batch", 1)
    rows = seen["sample"][:batch]  # CFG repeats the batch after these rows
    return (rows if batch > 1 else rows[0]), seen["t"]


def other_inside(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The same picture with different content under the mask only."""
    out = image.copy()
    out[mask > 0] = 255 - out[mask > 0]
    return out


# -- fill ---------------------------------------------------------------------------


def test_fill_paints_the_hole_from_its_surroundings():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32], img[:, 32:] = (200, 20, 20), (20, 20, 200)
    m = np.zeros((64, 64), np.uint8)
    m[20:44, 16:48] = 255
    img[m > 0] = (0, 255, 0)  # content under the mask must vanish
    out = masks.fill(img, m)
    assert np.array_equal(out[m == 0], img[m == 0])
    inside = out[m > 0].astype(int)
    assert inside[:, 1].max() < 40  # no green left
    row = out[32, 16:48].astype(int)
    assert row[0, 0] > row[-1, 0] and row[0, 2] < row[-1, 2]  # red side to blue side
    assert np.all(np.diff(row[:, 0]) <= 1)  # a smooth blend, not a copy of the edge


def test_fill_mode_hides_the_masked_pixels_from_the_unet(engine, init_image, hole):
    a, _ = unet_start(engine, init_image=init_image, mask=hole, inpaint_fill="fill")
    b, _ = unet_start(
        engine, init_image=other_inside(init_image, hole), mask=hole, inpaint_fill="fill"
    )
    assert torch.equal(a, b)
    # In "original" mode the same two pictures start differently under the mask.
    a, _ = unet_start(engine, init_image=init_image, mask=hole)
    b, _ = unet_start(engine, init_image=other_inside(init_image, hole), mask=hole)
    assert (a - b).abs().amax().item() > 0.05


# -- latent nothing / latent noise --------------------------------------------------


def test_latent_nothing_zeroes_the_masked_init_latents(engine, init_image, hole, latent_hole):
    other = np.random.default_rng(3).integers(0, 256, init_image.shape, dtype=np.uint8)
    a, t = unet_start(engine, init_image=init_image, mask=hole, inpaint_fill="latent nothing")
    b, _ = unet_start(engine, init_image=other, mask=hole, inpaint_fill="latent nothing")
    inside = torch.from_numpy(latent_hole)
    # Under the mask only the sampler's noise is left, whatever the picture ...
    assert torch.allclose(a[:, inside], b[:, inside], atol=1e-6)
    # ... outside, the picture still shows.
    assert (a[:, ~inside] - b[:, ~inside]).abs().amax().item() > 0.05
    # A1111 fills the pixels first in the latent modes too: outside, it starts as "fill".
    filled, _ = unet_start(engine, init_image=init_image, mask=hole, inpaint_fill="fill")
    assert torch.allclose(filled[:, ~inside], a[:, ~inside], atol=1e-6)
    assert (filled[:, inside] - a[:, inside]).abs().amax().item() > 0.05
    # And the noise is all there is: DDIM starts from sqrt(1 - abar) * noise there.
    abar = make_scheduler("DDIM", engine.load("tiny-sd1").components["scheduler"].config)
    abar = float(abar.alphas_cumprod[t])
    noise_part = a[:, inside] / (1 - abar) ** 0.5
    assert 0.5 < noise_part.std().item() < 1.5  # unit noise, no image term left


def test_latent_noise_replaces_masked_latents_with_seed_noise(
    engine, init_image, hole, latent_hole
):
    kw = dict(init_image=init_image, mask=hole, batch=2)
    nothing, t = unet_start(engine, inpaint_fill="latent nothing", **kw)
    noisy, _ = unet_start(engine, inpaint_fill="latent noise", **kw)
    inside = torch.from_numpy(latent_hole)
    assert torch.allclose(noisy[:, :, ~inside], nothing[:, :, ~inside], atol=1e-6)
    # DDIM: start = sqrt(abar) * init + sqrt(1 - abar) * noise, and init under the mask is
    # a fresh draw from each image's own seed (A1111's create_random_tensors(seeds)).
    sched = make_scheduler("DDIM", engine.load("tiny-sd1").components["scheduler"].config)
    fresh = initial_noise([SEED, SEED + 1], (4, 8, 8))
    expected = sched.alphas_cumprod[t].sqrt() * fresh
    assert torch.allclose((noisy - nothing)[:, :, inside], expected[:, :, inside], atol=1e-5)


def test_only_masked_fill_keeps_the_rest(engine):
    rng = np.random.default_rng(5)
    big = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[40:56, 60:76] = 255
    for mode in ("fill", "latent noise"):
        result = engine.run(
            job(
                init_image=big,
                mask=mask,
                inpaint_full_res=True,
                inpaint_padding=8,
                inpaint_fill=mode,
            )
        )
        out = result.images[0].image
        soft = masks.blur(mask, 4)
        assert out.shape == big.shape
        assert np.array_equal(out[soft == 0], big[soft == 0]), mode
        assert maxdiff(out[mask > 0], big[mask > 0]) > 10, mode


def test_latent_modes_work_on_sdxl(engine, init_image, hole, latent_hole):
    other = other_inside(init_image, hole)
    kw = dict(model="tiny-sdxl", mask=hole, inpaint_fill="latent nothing", sampler="Euler")
    a, _ = unet_start(engine, init_image=init_image, **kw)
    b, _ = unet_start(engine, init_image=other, **kw)
    inside = torch.from_numpy(latent_hole)
    assert torch.allclose(a[:, inside], b[:, inside], atol=1e-6)


# -- whole jobs ---------------------------------------------------------------------


def test_every_mode_keeps_the_unmasked_area_and_writes_a1111_infotext(engine, init_image):
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 20:44] = 255
    outs = {}
    for mode in INPAINT_FILLS:
        result = engine.run(
            job(init_image=init_image, mask=mask, mask_blur=2, strength=0.6, inpaint_fill=mode)
        )
        out = result.images[0].image
        soft = masks.blur(mask, 2)
        assert np.array_equal(out[soft == 0], init_image[soft == 0]), mode
        info = parse_infotext(result.images[0].infotext)
        assert info.extras.get("Masked content") == (None if mode == "original" else mode)
        outs[mode] = out
    for i, m1 in enumerate(INPAINT_FILLS):
        for m2 in INPAINT_FILLS[i + 1 :]:
            assert maxdiff(outs[m1][mask > 0], outs[m2][mask > 0]) > 3, (m1, m2)


def test_unknown_mode_is_an_invalid_job(engine, init_image, hole):
    bad = job(init_image=init_image, mask=hole, inpaint_fill="latent something")
    with pytest.raises(DreamwireError) as err:
        bad.validate()
    assert err.value.code == ErrorCode.INVALID_JOB
    assert "latent something" in str(err.value) and "latent nothing" in str(err.value)
    with pytest.raises(DreamwireError) as err:
        engine.run(bad)
    assert err.value.code == ErrorCode.INVALID_JOB
    assert Job().inpaint_fill == "original"
    body, arrays = job(init_image=init_image, mask=hole, inpaint_fill="fill").to_wire()
    assert Job.from_wire(body, arrays).inpaint_fill == "fill"


def test_cli_option_sets_the_mode(tmp_path: Path, init_image, hole):
    Image.fromarray(init_image).save(tmp_path / "init.png")
    Image.fromarray(hole).save(tmp_path / "mask.png")
    argv = ["generate", "--init-image", str(tmp_path / "init.png")]
    argv += ["--mask", str(tmp_path / "mask.png"), "--inpaint-fill", "latent noise"]
    assert build_job(build_parser().parse_args(argv)).inpaint_fill == "latent noise"
    assert build_job(build_parser().parse_args(argv[:5])).inpaint_fill == "original"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv[:5], "--inpaint-fill", "noise"])


# -- outpaint border ----------------------------------------------------------------


def test_outpaint_border_is_filled_not_stretched():
    img = np.full((32, 32, 3), 100, np.uint8)
    img[:, -1] = 250  # one odd edge column: stretching would smear it over the border
    canvas, grown = outpaint.grow(img, None, Outpaint(right=16, top=8))
    assert canvas.shape == (40, 48, 3) and grown.shape == (40, 48)
    assert np.array_equal(canvas[8:, :32], img)
    assert np.array_equal(grown[8:, :32], np.zeros((32, 32), np.uint8))
    assert (grown[:8] == 255).all() and (grown[:, 32:] == 255).all()
    border = canvas[8:, 32:].astype(int)
    assert border.max() < 200 and border.min() >= 100  # surroundings averaged, no black
