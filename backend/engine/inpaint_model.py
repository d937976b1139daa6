"""Which checkpoint an inpaint job runs on: the job's, or its family's inpainting model.

Flux.1 dev inpaints through FluxInpaintPipeline, which only starts the plain model from the
masked picture; Flux Fill was trained for it (the mask and the masked picture go in beside
the latents). As Krita AI Diffusion's Flux inpaint uses flux1-fill when it is installed, an
inpaint job on a plain checkpoint of a family with an inpainting variant (the spec's
`inpaint_variant`) runs on such a model from the library, decided when the job is planned,
unless the job says `inpaint_model: "off"`.
"""

from __future__ import annotations

from dreamwire import catalog
from dreamwire.backend.families import spec_for
from dreamwire.shared.family_support import job_features
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode

from . import library_adapter as libs


def stand_in(job: Job, entry, family: str, library):
    """The library entry to run `job` on in place of `entry` (its own checkpoint), or None
    to run on `entry`. Only a plain checkpoint stands aside (dev, not schnell, whose few
    steps Fill does not take, nor Kontext, which inpaints with its own pipeline), and only
    for what the inpainting model runs: no ControlNet units (Fill has no ControlNet
    pipeline) and no real CFG above 1 where it takes no negative prompt."""
    spec = spec_for(family)
    name = spec.inpaint_variant
    if not name or job.mode is not JobMode.INPAINT or job.inpaint_model != "auto":
        return None
    if catalog.variant_of(entry.arch):
        return None
    if "controlnet" in job_features(job) or (job.cfg > 1.0 and not spec.variant(name).real_cfg):
        return None
    found = [
        e
        for e in library.entries("checkpoint")
        if libs.family(e.arch) == family and catalog.variant_of(e.arch) == name
    ]
    if not found:
        return None
    missing = libs.missing_parts(library)  # a Fill transformer without its T5 cannot load
    usable = sorted((e for e in found if e.name not in missing), key=lambda e: e.name)
    return usable[0] if usable else None
