"""The job option `attention_maps`: DAAM heat maps per word (daam.py) captured by a named
cross-attention tap (hooks.tapped_cross_attention) around the first pass's pipeline call.

Only the first pass is read: it is where the picture's layout is decided, and a Hires.fix
pass runs at another latent size (DAAM sums one generation's steps at one size). The maps
are made at the end for each image of the batch, at the image's own size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dreamwire.shared.result import HeatMap

from . import daam
from .hooks import Conditioner, JobContext, PassCall, PassPart, tapped_cross_attention

HOOK_NAME = "engine.attention_maps"


@dataclass
class AttentionMaps:
    """The job's capture: None until its first pass runs."""

    collector: daam.Collector | None = None
    positions: dict[str, list[int]] = field(default_factory=dict)


class AttentionMapsConditioner(Conditioner):
    name = HOOK_NAME

    def resolve(self, ctx: JobContext) -> bool | None:
        return True if ctx.job.attention_maps else None

    @contextmanager
    def attach(self, ctx: JobContext, resolved: bool, mode: str) -> Iterator[PassPart | None]:
        state = ctx.state_of(AttentionMaps)
        if state.collector is not None:  # a later pass (Hires.fix): the first one's maps
            yield None
            return
        scale = 8  # every CLIP family's VAE halves three times (vae_scale_factor)
        latent = (ctx.height // scale, ctx.width // scale)

        @contextmanager
        def around(call: PassCall):
            state.collector = daam.Collector(call.images, latent)
            state.positions = daam.word_positions(call.pipe, ctx.job.prompt)
            with tapped_cross_attention(call.pipe.unet, HOOK_NAME, state.collector.capture):
                yield

        yield PassPart(around_call=around)


def heat_maps(ctx: JobContext, image: int, size: tuple[int, int]) -> list[HeatMap]:
    """Image `image`'s word maps at `size` (height, width); [] when the job asked none."""
    state = ctx.extension_state.get(AttentionMaps)
    if state is None or state.collector is None:
        return []
    return daam.word_maps(state.collector, state.positions, image, size)
