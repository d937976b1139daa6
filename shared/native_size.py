"""Large outputs in two passes: sample at the model's native resolution, then Hires.fix.

SD1.5 and SDXL make their compositions at the size they were trained on; asked for
2048x2048 directly they repeat and break the subject (two heads, tiled landscapes). Krita
AI Diffusion therefore generates a large region at the checkpoint's preferred resolution
and upscales and refines it to the full size (ai_diffusion/resolution.py,
`prepare_diffusion_input` and `CheckpointResolution`). The hosts use the same rule here,
and express the second pass as A1111's Hires.fix resized to the exact region size.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .events import Welcome
from .families import FAMILIES, ModelFamily, guess_from_name
from .families import family as family_spec
from .job import HiresFix
from .model_names import same_model
from .refine_upscaler import LANCZOS, refine_upscaler

# Krita AI Diffusion's refine pass after its upscale uses strength 0.4
# (workflow.scale_refine_and_decode): enough to add detail at the new size, too little to
# change the composition the first pass made.
REFINE_DENOISE = 0.4
# Its upscale is a model upscale of the decoded image (shared.refine_upscaler picks the
# backend's model as it would); without a model a pixel upscale suits a 0.4 refine (latent
# upscales blur below ~0.5 denoise).
REFINE_UPSCALER = LANCZOS


def _multiple_of(v: float, multiple: int = 8) -> int:
    # Krita AI Diffusion's Extent * scale rounds, then multiple_of rounds up.
    return max(multiple, -(-round(v) // multiple) * multiple)


def first_pass_size(width: int, height: int, family: str | ModelFamily) -> tuple[int, int] | None:
    """The size to sample at before upscaling to width x height, or None when the size is
    fine for one pass. `family`: a key of the shared table, or the family as the backend's
    welcome describes it (its sizes win: shared.family_support.model_info).

    Two passes when the region has more pixels than the family samples well at *and* a
    side longer than its largest side (both, as in Krita AI Diffusion, so a long thin
    strip within the pixel budget stays one pass). The first pass keeps the aspect ratio
    at the family's pixel budget, in multiples of 8.
    """
    res = family_spec(family).resolution
    pixels = width * height
    if pixels <= res.max_pixels or max(width, height) <= res.max_side:
        return None
    scale = math.sqrt(res.max_pixels / pixels)
    first = (_multiple_of(width * scale), _multiple_of(height * scale))
    if first[0] >= width and first[1] >= height:
        return None  # rounding ate the difference: nothing to gain from a second pass
    return first


def two_pass(
    width: int,
    height: int,
    family: str | ModelFamily,
    denoise: float = REFINE_DENOISE,
    upscalers: Iterable[str] | None = None,
) -> tuple[int, int, HiresFix | None]:
    """(job width, job height, hires): the job sized for the family, with a Hires.fix that
    resizes to exactly width x height when a second pass is needed. `upscalers`: the names
    the backend's welcome lists; its upscale model enlarges the first pass when it has one
    (shared.refine_upscaler), else Lanczos."""
    first = first_pass_size(width, height, family)
    if first is None:
        return width, height, None
    upscaler = refine_upscaler(upscalers, first, (width, height))
    hires = HiresFix(denoise=denoise, upscaler=upscaler, width=width, height=height)
    return first[0], first[1], hires


def model_family(model: str, welcome: Welcome | None) -> str:
    """The family of `model` ("" = the backend's default) from the backend's welcome
    (`model_families`, `default_model`), else guessed from the name."""
    families = welcome.model_families if welcome is not None else {}
    # A family this side has no entry for counts when the backend describes it.
    known_keys = set(FAMILIES) | set(welcome.families if welcome is not None else ())
    name = model or (welcome.default_model if welcome is not None else "")
    if name in families and families[name] in known_keys:
        return families[name]
    # The artist may have typed a file name or a path's stem.
    for known, fam in families.items():
        if fam in known_keys and same_model(name, known):
            return fam
    return guess_from_name(name)
