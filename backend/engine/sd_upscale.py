"""Upscale jobs: A1111's Extras upscale and its img2img "SD upscale" script.

The init image is upscaled with `dreamwire.backend.upscalers.upscale`. Without refine that
is the result (Extras). With refine the upscaled image is cut into overlapping tiles and
each tile is img2img'd with the job's settings, then the tiles are blended back, with the
tiling and blending rules of A1111's modules/images.py (`split_grid`, `combine_grid`):

* columns = ceil((W - overlap) / (tile - overlap)), spread evenly: x = int(col * dx) with
  dx = (W - tile) / (columns - 1), and a tile reaching the right edge (x + tile >= W) is
  moved to end exactly there; rows the same way;
* a tile overwrites the row from x + overlap on and blends into the `overlap` pixels before
  that with a ramp (mask = uint8(j * 255 / overlap), j = 0..overlap-1, PIL's rounded
  paste); rows are combined into the image the same way, top to bottom.

Seeds as in A1111's script (one tile per batch): tile i gets seed + i; image n of a batch
count starts at seed + n. Krita AI Diffusion guides each tile with a tile ControlNet fed
the tile itself; a job with `tile_control` gets a tile unit (no image: each pass's picture,
i.e. the tile) when the library has one for the model.

A job with `seamless` ("x", "y", "both") keeps a tiling texture tiling: the rules (wrap
padding for the upscaler, tiles on a torus, circular padding only for a tile spanning a
whole axis) are in seamless_upscale; A1111 has no seamless upscale to follow.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dreamwire.backend.canvas import masks
from dreamwire.backend.canvas.outpaint import Canvas
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import family as family_spec
from dreamwire.shared.job import Job, Outpaint
from dreamwire.shared.result import GeneratedImage, JobResult

from . import noise
from . import seamless_upscale as wrap
from .hooks import JobContext
from .passes import PassSpec, run_pass
from .progress import Reporter

# A1111's extra_generation_params keys, as the script writes them.
OVERLAP_KEY = "SD upscale overlap"
UPSCALER_KEY = "SD upscale upscaler"
# Ours: A1111 has no seamless upscale, so neither Extras nor the script has a key for it.
SEAMLESS_KEY = "SD upscale seamless"
PLAIN_SEAMLESS_KEY = "Postprocess seamless"


# -- tiling (A1111 split_grid / combine_grid) ---------------------------------------------
@dataclass(frozen=True)
class Grid:
    width: int  # the upscaled image's size
    height: int
    tile_w: int
    tile_h: int
    overlap: int
    ys: tuple[int, ...]  # top of each row
    xs: tuple[int, ...]  # left of each column (the same for every row)
    # Seamless axes: the tiles go round a torus there (a tile may run over the edge and
    # continue at the other side); see seamless_upscale.
    wrap_x: bool = False
    wrap_y: bool = False

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """(left, top, right, bottom) of every tile, row by row (past the right/bottom
        edge for a tile that wraps round a seamless axis)."""
        return [(x, y, x + self.tile_w, y + self.tile_h) for y in self.ys for x in self.xs]


def _starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1) if count > 1 else 0
    out = []
    for i in range(count):
        pos = int(i * step)
        if pos + tile >= size:
            pos = size - tile
        out.append(pos)
    return tuple(out)


def split(
    width: int,
    height: int,
    tile_w: int,
    tile_h: int,
    overlap: int,
    wrap_x: bool = False,
    wrap_y: bool = False,
) -> Grid:
    """Where A1111's split_grid puts the tiles of a width x height image; around the
    torus (seamless_upscale.wrap_starts) along a wrapped axis."""
    if not (0 < tile_w <= width and 0 < tile_h <= height):
        raise DreamwireError(
            ErrorCode.INVALID_SIZE, f"tile {tile_w}x{tile_h} does not fit in {width}x{height}"
        )
    if not 0 <= overlap < min(tile_w, tile_h):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"overlap {overlap} must be below the tile")
    return Grid(
        width,
        height,
        tile_w,
        tile_h,
        overlap,
        (wrap.wrap_starts if wrap_y else _starts)(height, tile_h, overlap),
        (wrap.wrap_starts if wrap_x else _starts)(width, tile_w, overlap),
        wrap_x,
        wrap_y,
    )


def crop(image: np.ndarray, grid: Grid) -> list[np.ndarray]:
    if grid.wrap_x or grid.wrap_y:
        return wrap.crop(image, grid)
    return [image[t:b, left:r] for left, t, r, b in grid.boxes()]


def _ramp(overlap: int) -> np.ndarray:
    # combine_grid's mask: float32 j * 255 / overlap, truncated to uint8.
    return (np.arange(overlap, dtype=np.float32) * 255 / overlap).astype(np.uint8)


def _blend(under: np.ndarray, over: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PIL's paste of `over` through an "L" mask: (under*(255-m) + over*m) / 255, rounded
    as its DIV255 macro does."""
    m = mask.astype(np.uint32)
    t = under.astype(np.uint32) * (255 - m) + over.astype(np.uint32) * m + 128
    return (((t >> 8) + t) >> 8).astype(np.uint8)


def combine(grid: Grid, tiles: list[np.ndarray]) -> np.ndarray:
    """A1111's combine_grid: tiles (row by row) back into one image."""
    if len(tiles) != grid.count:
        raise DreamwireError(ErrorCode.INTERNAL, f"{len(tiles)} tiles for {grid.count} places")
    if grid.wrap_x or grid.wrap_y:
        return wrap.combine(grid, tiles)
    ov, tw, th = grid.overlap, grid.tile_w, grid.tile_h
    ramp = _ramp(ov) if ov else None
    out = np.zeros((grid.height, grid.width, 3), np.uint8)
    it = iter(tiles)
    for y in grid.ys:
        row = np.zeros((th, grid.width, 3), np.uint8)
        for x in grid.xs:
            tile = next(it)
            if x == 0 or ramp is None:
                row[:, x : x + tw] = tile
                continue
            row[:, x : x + ov] = _blend(row[:, x : x + ov], tile[:, :ov], ramp[None, :, None])
            row[:, x + ov : x + tw] = tile[:, ov:]
        if y == 0 or ramp is None:
            out[y : y + th] = row
            continue
        out[y : y + ov] = _blend(out[y : y + ov], row[:ov], ramp[:, None, None])
        out[y + ov : y + th] = row[ov:]
    return out


# -- planning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    width: int  # the upscaled size
    height: int
    grid: Grid


def plan(job: Job, family: str) -> Plan:
    """The upscaled size and its tiles. Tile 0 is the family's native side; a tile larger
    than the image shrinks to it (whole latent cells), where A1111 would crop outside it;
    the overlap then shrinks so a tile still moves by 8 pixels at least."""
    up = job.upscale
    h, w = job.init_image.shape[:2]
    out_w, out_h = up.size(w, h)
    side = up.tile or family_spec(family).resolution.native
    tile_w, tile_h = min(side, out_w // 8 * 8), min(side, out_h // 8 * 8)
    overlap = max(0, min(up.overlap, tile_w - 8, tile_h - 8))
    wrap_x, wrap_y = wrap.axes(job.seamless)
    grid = split(out_w, out_h, tile_w, tile_h, overlap, wrap_x, wrap_y)
    return Plan(out_w, out_h, grid)


# -- the upscaler --------------------------------------------------------------------------
def check_upscaler(job: Job, library) -> None:
    from dreamwire.backend.upscalers import names

    known = names(library)
    if job.upscale.upscaler not in known:
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            f"upscaler {job.upscale.upscaler!r} not found; available: {', '.join(known)}",
            job.job_id,
        )


def upscaled(job: Job, library, device, reporter: Reporter) -> np.ndarray:
    """The init image upscaled; along the job's seamless axes the upscaler sees the
    wrap-around neighbourhood, so the result tiles as the input does."""
    from dreamwire.backend.upscalers import upscale

    up = job.upscale
    reporter.state("generating", f"upscaling with {up.upscaler}")

    def run(image: np.ndarray) -> np.ndarray:
        return upscale(
            image,
            up.upscaler,
            float(up.scale),
            library=library,
            device=getattr(device, "device", None),
            dtype=getattr(device, "dtype", None),
            should_cancel=reporter.should_cancel,
        )

    image = masks.to_rgb(job.init_image)
    wrap_x, wrap_y = wrap.axes(job.seamless)
    if not (wrap_x or wrap_y):
        return run(image)
    out_w, out_h = up.size(image.shape[1], image.shape[0])
    return wrap.upscale_wrapped(image, wrap_x, wrap_y, out_w, out_h, run)


def plain(job: Job, library, device, reporter: Reporter) -> JobResult:
    """refine off: A1111's Extras upscale; no checkpoint is loaded."""
    t0 = time.perf_counter()
    image = upscaled(job, library, device, reporter)
    up = job.upscale
    # Extras writes these keys (its "postprocessing" text); there is no generation to record.
    info = f"Postprocess upscale by: {up.scale:g}, Postprocess upscaler: {up.upscaler}"
    if job.seamless != "none":
        info += f", {PLAIN_SEAMLESS_KEY}: {job.seamless}"
    seed = max(int(job.seed), 0)
    images = [GeneratedImage(image=image, seed=seed, infotext=info)]
    return JobResult(
        job_id=job.job_id,
        images=images,
        timings={"upscale": time.perf_counter() - t0},
        tag=job.tag,
    )


# -- refine ----------------------------------------------------------------------------------
def refine(
    ctx: JobContext, reporter: Reporter, seeds: list[int], subseeds: list[int], extensions
) -> list[np.ndarray]:
    """Every image of the batch: upscale, img2img each tile, combine."""
    job = ctx.job
    the_plan = ctx.plan.upscale
    grid = the_plan.grid
    library = ctx.library
    big = upscaled(job, library, ctx.device, reporter)
    if big.shape[:2] != (the_plan.height, the_plan.width):
        raise DreamwireError(
            ErrorCode.INTERNAL,
            f"upscaler gave {big.shape[1]}x{big.shape[0]}, not {the_plan.width}x{the_plan.height}",
        )
    tiles = crop(big, grid)
    n_exec = ctx.plan.passes[0].executed_steps  # the tile pass
    reporter.total = n_exec * grid.count * len(seeds)
    if n_exec < 1:  # strength ~0: nothing to denoise, the upscale is the answer
        return [big.copy() for _ in seeds]
    # A1111 keeps p.subseed for every tile; only the seed moves on.
    tile_subseeds = subseeds[:1]
    out = []
    for start in seeds:
        done = []
        for i, tile in enumerate(tiles):
            reporter.check_cancel()  # between tiles
            reporter.state("generating", f"tile {i + 1}/{grid.count}")
            seed = (start + i) & noise.MAX_SEED
            done.append(_tile_pass(ctx, tile, seed, tile_subseeds, reporter, extensions))
        out.append(combine(grid, done))
    return out


def _tile_pass(ctx, tile: np.ndarray, seed: int, subseeds, reporter, extensions) -> np.ndarray:
    planned = ctx.plan.passes[0]
    h, w = tile.shape[:2]
    tile = np.ascontiguousarray(tile)
    # A unit with no image (the tile ControlNet) takes the pass's picture: this tile.
    ctx.canvas = Canvas(tile, None, (w, h), (w, h), Outpaint())
    spec = PassSpec(planned.mode, w, h, planned.steps, planned.strength, Image.fromarray(tile))
    images = run_pass(ctx, spec, [seed], subseeds, reporter, extensions)
    return (images[0] * 255).round().astype(np.uint8)
