"""Regional prompts: the Latent Couple extension's maths (opparco/stable-diffusion-webui-two-shot,
scripts/two_shot.py) on top of composable diffusion (composable.py).

Latent Couple joins its general prompt and the region prompts with "\\nAND " and runs them as
one composable prompt. After the UNet has run (A1111's cfg_denoised callback) it replaces
each subprompt's output x_i by ``x_i * f_i + uncond * (1 - f_i)``, with a per-subprompt
filter f_i on the latent grid, so that A1111's combine_denoised takes

    uncond + sum_i f_i * (cond_i - uncond) * w_i * cfg_scale

(w_i: the subprompt's own ``:weight``, 1 unless written). Its sketch ("Mask") tab makes the
filters this way, and so does this module:

* region i: its mask (0..1) times its area weight times (1 - alpha blend); here that
  product is `Region.weight` (Latent Couple's defaults, area weight 1 and alpha blend 0.2,
  are weight 0.8);
* the general prompt (the job's prompt, first): ``1 - sum_i`` of the region filters. It
  covers the whole image at full strength outside every region and keeps what the regions
  leave inside them; where regions overlap it goes below 0 (nothing normalises it, as in
  Latent Couple);
* each filter is resized to the latent grid with torch's ``nearest-exact``
  (MaskFilter.create_tensor), at every size a pass runs at, so a Hires.fix pass gets the
  masks at its own latent size.

The formula is linear in the model output, so taking it on the noise prediction (where the
Composer works) equals Latent Couple taking it on the denoised image. Latent Couple's "end
at this step" option (plain AND after that step) is not offered: the filters apply on every
step.

Masks cover the job's whole result image (Job.region_area); "only masked" inpainting runs
on a crop of it, so the filters are cut to that crop first.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dreamwire.shared.job import Region


def area_filters(regions: list[Region]) -> torch.Tensor:
    """(1 + k) x H x W float32 filters at the masks' resolution: the background's
    ``1 - sum`` first, then each region's ``mask * weight``."""
    scaled = [
        torch.from_numpy(np.asarray(r.mask, np.float32) / np.float32(255.0)) * float(r.weight)
        for r in regions
    ]
    stacked = torch.stack(scaled)
    background = torch.ones_like(stacked[0]) - stacked.sum(dim=0)
    return torch.cat([background[None], stacked])


def crop(filters: torch.Tensor, box, canvas: tuple[int, int]) -> torch.Tensor:
    """The part of the filters under `box` ((x1, y1, x2, y2) on a `canvas` (width, height)
    image), in the filters' own pixels, at least one pixel each way."""
    x1, y1, x2, y2 = box
    cw, ch = canvas
    h, w = filters.shape[-2:]
    left, right = (min(w - 1, round(x1 * w / cw)), round(x2 * w / cw))
    top, bottom = (min(h - 1, round(y1 * h / ch)), round(y2 * h / ch))
    return filters[:, top : max(bottom, top + 1), left : max(right, left + 1)]


def to_latent(filters: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1 + k) x height x width, resized as Latent Couple's MaskFilter does."""
    if filters.shape[-2:] == (height, width):
        return filters
    return F.interpolate(filters[None], size=(height, width), mode="nearest-exact")[0]


def pass_filters(ctx, regions) -> torch.Tensor | None:
    """The current pass's filters at mask resolution (None without regions)."""
    if not regions:
        return None
    filters = area_filters(regions)
    where = ctx.inpaint_region  # "only masked": the pass is a crop
    if where is not None:
        box, canvas = where
        filters = crop(filters, box, canvas)
    return filters


def infotext(regions: list[Region]) -> dict[str, str]:
    """Dreamwire's infotext keys (Latent Couple writes none for its masks): the count,
    each region's prompt, and its weight where it is not 1. Masks are not recorded."""
    if not regions:
        return {}
    out = {"Regions": str(len(regions))}
    for i, r in enumerate(regions, 1):
        out[f"Region {i}"] = r.prompt
        if float(r.weight) != 1.0:
            out[f"Region {i} weight"] = f"{float(r.weight):g}"
    return out


__all__ = ["area_filters", "crop", "infotext", "pass_filters"]
