"""Seamless upscales: a texture that tiles still tiles after an upscale, with refine off
(the upscaler sees the wrap-around neighbourhood) and on (the tiles go round a torus).
A1111 has no seamless upscale; the rules are engine/seamless_upscale's."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.engine import sd_upscale
from dreamwire.backend.engine import seamless_upscale as wrap
from dreamwire.backend.upscalers import upscale
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import Job, Upscale


@pytest.fixture
def texture() -> np.ndarray:
    """A 64 x 64 texture that tiles: periodic waves plus wrap-blurred noise."""
    rng = np.random.default_rng(3)
    t = np.arange(64) * 2 * np.pi / 64
    yy, xx = np.meshgrid(t, t, indexing="ij")
    waves = [np.sin(xx * 2 + yy), np.cos(yy * 3 - xx), np.sin(xx * 4) * np.cos(yy * 2)]
    noise = rng.normal(0, 1, (64, 64, 3))
    for axis in (0, 1):  # a wrapped box blur keeps the noise periodic
        noise = sum(np.roll(noise, k, axis=axis) for k in range(-2, 3)) / 5
    img = 128 + 60 * np.stack(waves, -1) + 25 * noise
    return np.clip(img, 0, 255).astype(np.uint8)


def seam_and_interior(img: np.ndarray, axis: int) -> tuple[float, np.ndarray]:
    """Mean |difference| across the wrap-around seam, and across every interior pair of
    neighbouring columns (axis 1) or rows (axis 0)."""
    a = img.astype(np.float64)
    inner = np.abs(np.diff(a, axis=axis)).mean(axis=(1 - axis, 2))
    seam = np.abs(np.take(a, 0, axis=axis) - np.take(a, -1, axis=axis)).mean()
    return float(seam), inner


def assert_tiles(img: np.ndarray, axes=(0, 1)) -> None:
    for axis in axes:
        seam, inner = seam_and_interior(img, axis)
        # The seam is one more pair of neighbours: no worse than the interior's usual.
        assert seam <= np.percentile(inner, 90), (axis, seam, np.sort(inner)[-5:])


def ujob(init, up: Upscale, seamless: str, **kw) -> Job:
    base = dict(prompt="moss", sampler="Euler", steps=4, strength=0.5, seed=5, init_image=init)
    base.update(kw)
    return Job(**base, upscale=up, seamless=seamless)


def test_upscale_takes_every_seamless_axis(texture):
    for axes in ("x", "y", "both"):
        assert ujob(texture, Upscale(), axes).validate().seamless == axes


@pytest.mark.parametrize("size,tile,overlap", [(100, 64, 16), (96, 64, 16), (200, 64, 8)])
def test_torus_tiles_cover_every_seam(size, tile, overlap):
    starts = wrap.wrap_starts(size, tile, overlap)
    ends = [s + tile for s in starts]
    # Each tile overlaps the next by `overlap` at least, the last one the first across
    # the edge, and no tile is longer than the circle.
    assert tile <= size
    for i in range(len(starts)):
        nxt = starts[(i + 1) % len(starts)] + (size if i == len(starts) - 1 else 0)
        assert ends[i] - nxt >= overlap
    grid = sd_upscale.split(size, 90, tile, 64, overlap, wrap_x=True)
    assert grid.ys == sd_upscale.split(size, 90, tile, 64, overlap).ys  # y: A1111's rule
    rng = np.random.default_rng(size)
    image = rng.integers(0, 256, (90, size, 3), dtype=np.uint8)
    tiles = sd_upscale.crop(image, grid)
    rolled = [np.roll(image, -x, axis=1)[y : y + 64, :tile] for y in grid.ys for x in grid.xs]
    assert all(np.array_equal(a, b) for a, b in zip(tiles, rolled, strict=True))
    assert np.array_equal(sd_upscale.combine(grid, tiles), image)


def test_circular_padding_only_for_a_tile_spanning_its_axis():
    whole = sd_upscale.split(64, 96, 64, 64, 16, wrap_x=True, wrap_y=True)
    assert wrap.tile_axes(whole) == "x"  # one tile spans x; y needs two windows
    assert wrap.tile_axes(sd_upscale.split(64, 64, 64, 64, 16, True, True)) == "both"
    assert wrap.tile_axes(sd_upscale.split(64, 64, 64, 64, 16)) == "none"


@pytest.mark.parametrize("name,scale", [("Lanczos", 2.0), ("tiny-compact-x4", 1.5)])
def test_plain_seamless_is_the_middle_of_the_repeated_upscale(
    engine, library, texture, name, scale
):
    up = Upscale(scale=scale, upscaler=name, refine=False)
    out = engine.run(ujob(texture, up, "both")).images[0]
    side = round(64 * scale)
    assert out.image.shape == (side, side, 3)
    # What the upscaler makes of the middle copy of the texture repeated 3 x 3.
    middle = upscale(np.tile(texture, (3, 3, 1)), name, scale, library=library)[
        side : 2 * side, side : 2 * side
    ]
    assert np.abs(out.image.astype(int) - middle).max() <= 1
    assert_tiles(out.image)
    plain = engine.run(ujob(texture, up, "none")).images[0].image
    assert np.array_equal(plain, upscale(texture, name, scale, library=library))
    assert np.abs(plain.astype(int) - middle).max() > 1  # the edges differ without wrapping
    assert out.infotext.endswith(", Postprocess seamless: both")


def test_plain_seamless_one_axis(engine, texture):
    up = Upscale(scale=2.0, upscaler="tiny-compact-x4", refine=False)
    out = engine.run(ujob(texture, up, "x")).images[0].image
    plain = engine.run(ujob(texture, up, "none")).images[0].image
    assert_tiles(out, axes=(1,))
    # Along y nothing wraps: the top and bottom rows are the plain upscale's (the
    # upscaler saw the same pixels above and below them).
    assert np.array_equal(out[:, 40:88], plain[:, 40:88])


def test_refine_seamless_tiles_on_a_torus(engine, texture):
    up = Upscale(scale=1.5, tile=64, overlap=16, tile_control=False)
    job = ujob(texture, up, "both")
    out = engine.run(job).images[0]
    assert out.image.shape == (96, 96, 3)
    assert_tiles(out.image)
    # Each tile is a plain img2img (no circular padding: a 64 px window onto 96 px) of the
    # seamless upscale cut round the torus, tile i with seed + i; the last tile of a row
    # runs over the right edge, so the seam is refined with its neighbours on both sides.
    big = engine.run(ujob(texture, Upscale(scale=1.5, refine=False), "both")).images[0].image
    grid = sd_upscale.split(96, 96, 64, 64, 16, wrap_x=True, wrap_y=True)
    assert grid.xs == grid.ys == (0, 48)
    tiles = []
    for i, tile in enumerate(sd_upscale.crop(big, grid)):
        direct = Job(
            prompt=job.prompt,
            sampler="Euler",
            steps=4,
            strength=0.5,
            seed=5 + i,
            width=64,
            height=64,
            init_image=tile,
        )
        tiles.append(engine.run(direct).images[0].image)
    assert np.array_equal(out.image, sd_upscale.combine(grid, tiles))
    info = parse_infotext(out.infotext)
    assert info.extras["SD upscale seamless"] == "both"
    assert not info.tiling
    # Without seamless the same job is A1111's script, unchanged.
    plain = engine.run(ujob(texture, up, "none")).images[0]
    assert not np.array_equal(plain.image, out.image)
    assert "SD upscale seamless" not in plain.infotext


def test_refine_one_tile_uses_circular_padding(engine, texture):
    up = Upscale(scale=1.0, tile=64, overlap=16, tile_control=False)
    out = engine.run(ujob(texture, up, "both", steps=2)).images[0]
    assert_tiles(out.image)
    info = parse_infotext(out.infotext)
    assert info.tiling and info.extras["SD upscale seamless"] == "both"
