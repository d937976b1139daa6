"""The engine's own conditioners: regional prompts and composable (AND) prompts.

They follow the same `Conditioner` protocol as the kinds handed in by whoever builds the
engine (backend/conditioning), but live here, since the maths is the engine's own
(composable.py, regions.py) and needs no file: `Engine` appends `builtin()` after the
injected conditioners, so every job runs them.

* `RegionsConditioner` resolves the plan's regions (JobPlan.regions) and, for each pass,
  lays their filters out on the pass's picture ("only masked": the crop), shared with the
  composable-prompt conditioner through `PassFilters` (JobContext.state_of).
* `ComposableConditioner` resolves when the plan says a pass's prompt is composable
  (JobPlan.composable) and hooks the pipeline's call (PassPart.around_call): the UNet's
  batch is widened to every subprompt for the call and restored after it.

Neither registers a step hook: the schedule step the Composer reads is the pass's own
(PassCall.step), moved on by the pass's step callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from dreamwire.shared.job import Region

from . import composable, regions
from .hooks import Conditioner, JobContext, PassCall, PassPart


@dataclass
class PassFilters:
    """The current pass's region filters (k x H x W at mask resolution), None outside a
    pass or without regions."""

    filters: Any = None


class RegionsConditioner(Conditioner):
    name = "engine.regions"

    def resolve(self, ctx: JobContext) -> tuple[Region, ...] | None:
        planned = ctx.plan.regions if ctx.plan is not None else tuple(ctx.job.regions)
        return planned or None

    @contextmanager
    def attach(
        self, ctx: JobContext, resolved: tuple[Region, ...], mode: str
    ) -> Iterator[PassPart | None]:
        shared = ctx.state_of(PassFilters)
        shared.filters = regions.pass_filters(ctx, resolved)
        try:
            yield None
        finally:
            shared.filters = None


class ComposableConditioner(Conditioner):
    name = "engine.composable"

    def resolve(self, ctx: JobContext) -> bool | None:
        return True if ctx.plan is not None and ctx.plan.composable else None

    @contextmanager
    def attach(self, ctx: JobContext, resolved: bool, mode: str) -> Iterator[PassPart | None]:
        shared = ctx.state_of(PassFilters)

        def around(call: PassCall):
            # A family whose encoding has no AND prompts (Flux) gives a plain plan.
            if not call.prompts.composable:
                return nullcontext()
            return composable.hooked(call.pipe, composable.Composer(call, shared.filters))

        yield PassPart(around_call=around)


def builtin() -> list[Conditioner]:
    """The engine's own conditioners, in the order they attach (after the injected ones)."""
    from .cfg_rescale import CfgRescaleConditioner
    from .daam_conditioner import AttentionMapsConditioner

    # CFG rescale after AND prompts: it rescales the combined prediction (cfg_rescale.py).
    return [
        RegionsConditioner(),
        ComposableConditioner(),
        CfgRescaleConditioner(),
        AttentionMapsConditioner(),
    ]
