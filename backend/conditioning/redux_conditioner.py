"""Flux Redux as a conditioner: the reference units of a Flux.1 job (the family spec's
`reference` is Redux; unit_resolution.py plans them as a ReduxInfo and its SigLIP).

Per unit, once per job (every pass reads the same reference), diffusers'
FluxPriorReduxPipeline computation: the SigLIP image processor, SiglipVisionModel's
last_hidden_state, the Redux embedder; the image tokens go to the pass as `prompt_tokens`,
which the engine appends after T5's prompt sequence (prompting_clip_t5.py), units in the
job's order. CLIP's pooled vector stays the prompt's.

The unit weight follows ComfyUI's StyleModelApply with strength_type "multiply": the image
tokens are multiplied by it (its other type, "attn_bias", adds log(weight) to the attention
logits of those tokens instead; not built). A unit's start/end window (A1111's rule: active
when start <= step/steps <= end) leaves its tokens out of the transformer's text sequence
outside the window (redux_window.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.engine.unit_planning import PlannedUnit
from dreamwire.backend.families import spec_for

from . import control_image, on_canvas, redux_files
from .files import mtime
from .observer import REDUX, StackObserver
from .redux_files import ReduxInfo, SiglipFile
from .redux_window import TokenWindows
from .unit_resolution import UnitConditioner


@dataclass
class ReduxJob:
    units: list[PlannedUnit]
    tokens: list[torch.Tensor] | None = None  # per unit, weighted; made at the first pass


class ReduxConditioner(UnitConditioner):
    name = "conditioning.redux"
    kind = REDUX

    def __init__(self, cache_size: int = 2, observer: StackObserver | None = None):
        super().__init__(observer)
        # Redux embedders and SigLIP encoders (two per unit: twice the room).
        self._cache: BoundedCache = BoundedCache(2 * cache_size)

    def resolve(self, ctx: JobContext) -> ReduxJob | None:
        mine = super().resolve(ctx)
        return ReduxJob(mine) if mine else None

    @contextmanager
    def attach(self, ctx: JobContext, job: ReduxJob, mode: str) -> Iterator[PassPart]:
        if job.tokens is None:
            with torch.inference_mode():
                job.tokens = [self._tokens(ctx, i, r) for i, r in enumerate(job.units)]
        windows = TokenWindows.of(job.units, job.tokens)
        if windows is None:  # every unit active at every step
            yield PassPart(prompt_tokens=torch.cat(job.tokens, dim=1))
            return
        transformer = ctx.model.components[spec_for(ctx.model.family).denoiser]
        with windows.hooked(transformer):
            yield PassPart(prompt_tokens=torch.cat(job.tokens, dim=1), step_hook=windows.step_hook)

    def _cached(self, key: tuple, make):
        return self._cache.get(key, make)[0]

    def _tokens(self, ctx: JobContext, i: int, r: PlannedUnit) -> torch.Tensor:
        info, enc = r.info, r.encoder
        assert isinstance(info, ReduxInfo) and isinstance(enc, SiglipFile)
        dev = ctx.device
        where = f"reference unit {i} ({info.name})"
        at = (str(dev.device), str(dev.dtype))
        embedder = self._cached(
            ("redux", str(info.path), mtime(info.path), *at),
            lambda: redux_files.load_redux(info, dev.dtype, dev.device),
        )
        encoder = self._cached(
            ("siglip", str(enc.path), mtime(enc.path), *at),
            lambda: redux_files.load_siglip(enc, dev.dtype, dev.device),
        )
        if r.unit.image is None:  # A1111: the img2img picture is the reference
            rgb, _ = on_canvas.picture(ctx.canvas, "ip-adapter", where)
        else:
            rgb, _ = control_image.split_channels(r.unit.image, f"{where} image")
        # As FluxPriorReduxPipeline.encode_image does it.
        pixels = redux_files.image_processor(enc).preprocess(
            images=Image.fromarray(rgb), do_resize=True, return_tensors="pt", do_convert_rgb=True
        )
        pixels = pixels.to(device=dev.device, dtype=dev.dtype)
        hidden = encoder(**pixels).last_hidden_state
        tokens = embedder(hidden).image_embeds
        weight = float(r.unit.weight)
        return tokens if weight == 1.0 else tokens * weight  # StyleModelApply "multiply"
