"""Upscale jobs: A1111's Extras upscale (refine off) and its "SD upscale" script (refine on:
tiles img2img'd and blended back as modules/images.py's split_grid / combine_grid do),
with Krita AI Diffusion's tile ControlNet per tile."""

from __future__ import annotations

import contextlib
import math
import types
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.engine import sd_upscale
from dreamwire.backend.engine.hooks import Conditioner
from dreamwire.backend.upscalers import upscale
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import ControlUnit, Job, Upscale
from tests.support.engines import cpu_engine


# -- A1111's rule, written out independently with PIL as the script runs it ---------------
def a1111_split(image: Image.Image, tile_w: int, tile_h: int, overlap: int):
    w, h = image.size
    cols = math.ceil((w - overlap) / (tile_w - overlap))
    rows = math.ceil((h - overlap) / (tile_h - overlap))
    dx = (w - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (h - tile_h) / (rows - 1) if rows > 1 else 0
    grid = []
    for row in range(rows):
        y = int(row * dy)
        if y + tile_h >= h:
            y = h - tile_h
        cells = []
        for col in range(cols):
            x = int(col * dx)
            if x + tile_w >= w:
                x = w - tile_w
            cells.append([x, image.crop((x, y, x + tile_w, y + tile_h))])
        grid.append([y, cells])
    return grid


def a1111_combine(grid, image_w: int, image_h: int, tile_w: int, tile_h: int, overlap: int):
    def mask(r):
        return Image.fromarray((r * 255 / overlap).astype(np.uint8), "L")

    ramp = np.arange(overlap, dtype=np.float32)
    mask_w = mask(ramp.reshape(1, overlap).repeat(tile_h, axis=0))
    mask_h = mask(ramp.reshape(overlap, 1).repeat(image_w, axis=1))
    out = Image.new("RGB", (image_w, image_h))
    for y, cells in grid:
        row = Image.new("RGB", (image_w, tile_h))
        for x, tile in cells:
            if x == 0:
                row.paste(tile, (0, 0))
                continue
            row.paste(tile.crop((0, 0, overlap, tile_h)), (x, 0), mask=mask_w)
            row.paste(tile.crop((overlap, 0, tile_w, tile_h)), (x + overlap, 0))
        if y == 0:
            out.paste(row, (0, 0))
            continue
        out.paste(row.crop((0, 0, image_w, overlap)), (0, y), mask=mask_h)
        out.paste(row.crop((0, overlap, image_w, tile_h)), (0, y + overlap))
    return out


@pytest.mark.parametrize(
    "size,tile,overlap",
    [
        ((200, 150), (64, 64), 16),
        ((256, 128), (64, 64), 32),
        ((97, 300), (64, 96), 8),
        ((64, 64), (64, 64), 16),
        ((130, 71), (64, 64), 48),
    ],
)
def test_split_and_combine_match_a1111(size, tile, overlap):
    rng = np.random.default_rng(sum(size) + overlap)
    w, h = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = a1111_split(Image.fromarray(image), *tile, overlap)
    grid = sd_upscale.split(w, h, *tile, overlap)
    assert grid.ys == tuple(y for y, _ in ref)
    assert grid.xs == tuple(x for x, _ in ref[0][1])
    ours = sd_upscale.crop(image, grid)
    theirs = [np.asarray(t) for _, cells in ref for _, t in cells]
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # Different content per tile, as img2img makes it, so every blend shows.
    changed = [
        np.clip(t.astype(int) + rng.integers(-60, 60, 3), 0, 255).astype(np.uint8) for t in ours
    ]
    it = iter(changed)
    for _, cells in ref:
        for cell in cells:
            cell[1] = Image.fromarray(next(it))
    expected = np.asarray(a1111_combine(ref, w, h, *tile, overlap))
    assert np.array_equal(sd_upscale.combine(grid, changed), expected)
    # Unchanged tiles give the image back.
    assert np.array_equal(sd_upscale.combine(grid, ours), image)


def test_plan_native_tile_and_small_images():
    job = Job(init_image=np.zeros((300, 400, 3), np.uint8), upscale=Upscale(scale=2.0))
    p = sd_upscale.plan(job, "sd1")
    assert (p.width, p.height) == (800, 600)
    assert (p.grid.tile_w, p.grid.tile_h, p.grid.overlap) == (512, 512, 64)
    assert sd_upscale.plan(job, "sdxl").grid.tile_w == 800 // 8 * 8  # 1024 > 800: shrunk
    small = Job(init_image=np.zeros((20, 30, 3), np.uint8), upscale=Upscale(scale=1.5))
    p = sd_upscale.plan(small, "sd1")
    assert (p.grid.tile_w, p.grid.tile_h) == (40, 24) and p.grid.overlap == 16


def ujob(init, **kw) -> Job:
    up = kw.pop("upscale", None) or Upscale(scale=1.5, tile=64, overlap=16, tile_control=False)
    base = dict(
        prompt="weathered stone",
        sampler="Euler",
        steps=4,
        strength=0.5,
        seed=11,
        init_image=init,
        upscale=up,
    )
    base.update(kw)
    return Job(**base)


def test_no_refine_is_the_upscale(engine, init_image, monkeypatch):
    job = ujob(init_image, upscale=Upscale(scale=2.5, upscaler="Lanczos", refine=False))

    def no_loading(*args, **kwargs):
        raise AssertionError("an Extras upscale loads no checkpoint")

    monkeypatch.setattr(engine, "load", no_loading)
    result = engine.run(job)
    img = result.images[0]
    assert np.array_equal(img.image, upscale(init_image, "Lanczos", 2.5))
    assert img.image.shape == (160, 160, 3)
    assert img.infotext == "Postprocess upscale by: 2.5, Postprocess upscaler: Lanczos"


def test_refine_is_img2img_of_each_tile(engine, init_image):
    events = []
    job = ujob(init_image)
    result = engine.run(job, on_progress=events.append)
    out = result.images[0]
    big = upscale(init_image, "Lanczos", 1.5)
    grid = sd_upscale.split(96, 96, 64, 64, 16)
    assert grid.count == 4 and out.image.shape == (96, 96, 3)
    # Each tile is a plain img2img of that tile, tile i with seed + i (A1111's script).
    tiles = []
    for i, tile in enumerate(sd_upscale.crop(big, grid)):
        direct = Job(
            prompt=job.prompt,
            sampler="Euler",
            steps=4,
            strength=0.5,
            seed=11 + i,
            width=64,
            height=64,
            init_image=np.ascontiguousarray(tile),
        )
        tiles.append(engine.run(direct).images[0].image)
    assert np.array_equal(out.image, sd_upscale.combine(grid, tiles))
    assert not np.array_equal(out.image, big)
    # Progress runs across all tiles: A1111's img2img steps, int(4 x 0.5) + 1 = 3 each.
    steps = [e.step for e in events if e.state == "generating" and not e.message]
    assert steps[-1] == 12 and {e.total for e in events if e.total} == {12}
    assert [e.message for e in events if e.message.startswith("tile")] == [
        f"tile {i}/4" for i in range(1, 5)
    ]
    info = parse_infotext(out.infotext)
    assert (info.width, info.height, info.seed) == (64, 64, 11)
    assert info.extras["SD upscale overlap"] == "16"
    assert info.extras["SD upscale upscaler"] == "Lanczos"
    assert info.denoising_strength == 0.5
    assert "SD upscale overlap: 16, SD upscale upscaler: Lanczos" in out.infotext


def test_batch_count_starts_each_upscale_at_the_next_seed(engine, init_image):
    up = Upscale(scale=1.0, tile=64, overlap=16, tile_control=False)
    two = engine.run(ujob(init_image, upscale=up, batch=2, steps=2))
    second = engine.run(ujob(init_image, upscale=up, seed=12, steps=2))
    assert [i.seed for i in two.images] == [11, 12]
    assert np.array_equal(two.images[1].image, second.images[0].image)


def test_cancel_between_tiles(engine, init_image):
    events = []
    cancel = {"now": False}

    def on_progress(e):
        events.append(e)
        if e.state == "generating" and not e.message and e.step == 2:  # tile 1's last step
            cancel["now"] = True

    with pytest.raises(DreamwireError) as err:
        engine.run(ujob(init_image), on_progress=on_progress, should_cancel=lambda: cancel["now"])
    assert err.value.code == ErrorCode.CANCELLED
    assert [e.message for e in events if e.message.startswith("tile")] == ["tile 1/4"]


@pytest.fixture(scope="module")
def control_engine(library):
    return cpu_engine(library, cache_size=2)


def _controlnet(engine):
    from dreamwire.backend.conditioning.controlnet_conditioner import ControlNetConditioner

    return next(c for c in engine.extensions if isinstance(c, ControlNetConditioner))


def test_tile_controlnet_per_tile(control_engine, init_image, monkeypatch):
    cn = _controlnet(control_engine)
    parts = []
    original = cn.attach

    @contextmanager
    def recording(ctx, resolved, mode):
        with original(ctx, resolved, mode) as part:
            parts.append((resolved[0].info.name, part))
            yield part

    monkeypatch.setattr(cn, "attach", recording)
    up = Upscale(scale=1.5, tile=64, overlap=16, tile_control=True)
    with_tile = control_engine.run(ujob(init_image, upscale=up, steps=2)).images[0]
    used = list(parts)
    parts.clear()
    up_off = Upscale(scale=1.5, tile=64, overlap=16, tile_control=False)
    without = control_engine.run(ujob(init_image, upscale=up_off, steps=2)).images[0]
    assert [name for name, _ in used] == ["control_v11f1e_sd15_tile"] * 4
    assert parts == []  # no tile unit: the ControlNet conditioner is never attached
    big = upscale(init_image, "Lanczos", 1.5)
    grid = sd_upscale.split(96, 96, 64, 64, 16)
    for (_, part), tile in zip(used, sd_upscale.crop(big, grid), strict=True):
        control = part.call_kwargs["control_image"][0].float().cpu().numpy()[0]
        assert np.allclose(control.transpose(1, 2, 0), tile / 255.0, atol=1e-6)
    assert not np.array_equal(with_tile.image, without.image)


def test_tile_control_off_without_a_tile_controlnet(control_engine, init_image, monkeypatch):
    monkeypatch.setattr(_controlnet(control_engine), "offers_control", lambda ctx, kind: False)
    up = Upscale(scale=1.0, tile=64, overlap=16, tile_control=True)
    result = control_engine.run(ujob(init_image, upscale=up, steps=2))
    assert "ControlNet" not in result.images[0].infotext


@pytest.mark.parametrize(
    "change,code",
    [
        (dict(init_image=None), ErrorCode.INVALID_IMAGE),
        (dict(upscale=Upscale(scale=0.5)), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(scale=9)), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(scale=True)), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(scale="2")), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(upscaler="")), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(tile=60)), ErrorCode.INVALID_SIZE),
        (dict(upscale=Upscale(tile=32)), ErrorCode.INVALID_SIZE),
        (dict(upscale=Upscale(tile=64, overlap=64)), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(overlap=-1)), ErrorCode.INVALID_JOB),
        (dict(upscale=Upscale(refine="yes")), ErrorCode.INVALID_JOB),
        (dict(mask=np.zeros((64, 64), np.uint8)), ErrorCode.INVALID_JOB),
        (dict(seamless="diagonal"), ErrorCode.INVALID_JOB),  # "x", "y", "both" are fine
        (
            dict(controls=[ControlUnit("tile", np.zeros((8, 8, 3), np.uint8))]),
            ErrorCode.INVALID_JOB,
        ),
        (
            dict(init_image=np.zeros((10, 2000, 3), np.uint8), upscale=Upscale(scale=5)),
            ErrorCode.INVALID_SIZE,
        ),
    ],
)
def test_validation(change, code, init_image):
    job = ujob(init_image, upscale=Upscale())
    for key, value in change.items():
        setattr(job, key, value)
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code == code


def test_unknown_upscaler_before_loading(engine, init_image):
    job = ujob(init_image, upscale=Upscale(upscaler="4x-Missing"))
    with pytest.raises(DreamwireError) as err:
        engine.run(job)
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND and "Lanczos" in err.value.message


def test_wire_round_trip_and_unknown_fields(init_image):
    job = ujob(init_image, upscale=Upscale(scale=3, upscaler="Nearest", refine=False, tile=128))
    body, arrays = job.to_wire()
    assert body["upscale"] == {
        "scale": 3,
        "upscaler": "Nearest",
        "refine": False,
        "tile": 128,
        "overlap": 64,
        "tile_control": True,
    }
    back = Job.from_wire(body, arrays)
    assert back.upscale == job.upscale
    body["upscale"]["sharpen"] = 1
    with pytest.raises(DreamwireError) as err:
        Job.from_wire(body, arrays)
    assert err.value.code == ErrorCode.INVALID_JOB


def test_server_limits_the_upscaled_size(init_image):
    from dreamwire.backend.server.server import Server
    from dreamwire.shared.protocol import Limits

    fake = types.SimpleNamespace(limits=Limits(max_pixels=100 * 100))
    # Validated, as parse_submit hands them over.
    Server._check_limits(fake, ujob(init_image, upscale=Upscale(scale=1.5)).validate())  # 96²
    with pytest.raises(DreamwireError) as err:
        Server._check_limits(fake, ujob(init_image, upscale=Upscale(scale=2)).validate())
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED


def test_cli_upscale(tmp_path, tiny_models, init_image, capsys, monkeypatch):
    import json

    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job, main

    Image.fromarray(init_image).save(tmp_path / "in.png")
    monkeypatch.setenv("DREAMWIRE_CONFIG", str(tmp_path / "none.toml"))
    argv = ["generate", "--init-image", str(tmp_path / "in.png"), "--upscale", "2"]
    options = ["--upscaler", "Nearest", "--upscale-tile", "64", "--upscale-overlap", "32"]
    job = build_job(build_parser().parse_args([*argv, *options, "--no-tile-control"]))
    assert job.upscale == Upscale(2.0, "Nearest", True, 64, 32, False)
    assert build_job(build_parser().parse_args(argv[:3])).upscale is None
    run = [*argv, "--no-refine", "--models", str(tiny_models), "--out", str(tmp_path), "--json"]
    assert main(build_parser().parse_args(run)) == 0
    (item,) = json.loads(capsys.readouterr().out)["images"]
    with Image.open(item["path"]) as img:
        assert np.array_equal(np.asarray(img), upscale(init_image, "Lanczos", 2))
        assert img.info["parameters"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_model_upscaler_feeds_the_tiles(engine, library, init_image):
    name = "tiny-compact-x4"
    plain = engine.run(ujob(init_image, upscale=Upscale(scale=1.5, upscaler=name, refine=False)))
    big = upscale(init_image, name, 1.5, library=library)
    assert np.array_equal(plain.images[0].image, big)
    assert not np.array_equal(big, upscale(init_image, "Lanczos", 1.5))
    up = Upscale(scale=1.5, upscaler=name, tile=64, overlap=16, tile_control=False)
    refined = engine.run(ujob(init_image, upscale=up, strength=0.0)).images[0]
    assert np.array_equal(refined.image, big)  # no step to run: the model's upscale
    assert f"SD upscale upscaler: {name}" in refined.infotext


class _Shown(Conditioner):
    """What a conditioner is shown at each step: the job, and the units the pass runs."""

    name = "test.shown"

    def __init__(self) -> None:
        self.seen: list[tuple[str, Job, list[str]]] = []

    def _note(self, hook: str, ctx) -> None:
        self.seen.append((hook, ctx.job, [c.type for c in ctx.controls]))

    def resolve(self, ctx):
        self._note("resolve", ctx)
        return True

    @contextlib.contextmanager
    def attach_job(self, ctx, resolved):
        yield
        self._note("job_done", ctx)

    @contextlib.contextmanager
    def attach(self, ctx, resolved, mode):
        self._note("pass", ctx)
        yield None  # nothing of its own for the pass


def test_the_tiles_run_the_submitted_job_never_a_replacement(library, init_image):
    """The tile passes get their size, axes and tile ControlNet from the plan; every hook
    is shown the job as it was submitted (the engine used to swap in a tile-sized copy)."""
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine

    shown = _Shown()
    engine = Engine(library, device="cpu", extensions=[shown, *engine_extensions()])
    up = Upscale(scale=1.5, tile=64, overlap=16, tile_control=True)
    # seamless x over three columns: the tiles themselves wrap along no axis.
    job = ujob(init_image, upscale=up, steps=2, seamless="x")
    submitted = (job.width, job.height, job.seamless, list(job.controls))
    out = engine.run(job).images[0]
    assert [hook for hook, _, _ in shown.seen] == ["resolve", *["pass"] * 4, "job_done"]
    assert all(seen is job for _, seen, _ in shown.seen)
    assert (job.width, job.height, job.seamless, job.controls) == submitted == (512, 512, "x", [])
    # ... while every tile ran with the tile unit the engine added, at the tile's size.
    assert all(units == ["tile"] for _, _, units in shown.seen)
    info = parse_infotext(out.infotext)
    assert (info.width, info.height) == (64, 64) and not info.tiling
    assert info.controlnets[0].model_name.startswith("control_v11f1e_sd15_tile")
    assert info.extras["SD upscale seamless"] == "x"
