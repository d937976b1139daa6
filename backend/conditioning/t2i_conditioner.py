"""T2I-Adapters as a conditioner: the job's adapter units (unit_resolution.py), and for each
pass their features from the control images at the pass size, added inside the UNet's down
blocks by a hook (adapter_stack.py) that is removed when the pass ends. They run in any
pipeline, beside ControlNets in the same pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.engine.unit_planning import PlannedUnit

from . import t2i_adapter, units
from .adapter_stack import AdapterStack
from .net_cache import NetCache
from .observer import T2I_ADAPTER, StackObserver
from .t2i_adapter import AdapterInfo
from .unit_resolution import UnitConditioner, hires_pass, pass_image


class T2IAdapterConditioner(UnitConditioner):
    name = "conditioning.t2i_adapter"
    kind = T2I_ADAPTER

    def __init__(self, nets: NetCache, observer: StackObserver | None = None):
        super().__init__(observer)
        self.nets = nets  # shared with the ControlNet conditioner

    @contextmanager
    def attach(self, ctx: JobContext, resolved: list[PlannedUnit], mode: str) -> Iterator[PassPart]:
        job, model = ctx.job, ctx.model
        hires = hires_pass(ctx, mode)
        infos = [r.info for r in resolved if isinstance(r.info, AdapterInfo)]
        for info in infos:
            t2i_adapter.check_size(info.adapter.config, ctx.width, ctx.height, info.name)
        adapters = [self.nets.get(info, model, ctx.device) for info in infos]
        stack_units = [units.stack_unit(r.unit, r.info, hires) for r in resolved]
        images = [pass_image(ctx, r) for r in resolved]
        stack = AdapterStack(
            adapters,
            stack_units,
            images,
            cfg=job.cfg > 1.0,
            on_ran=partial(self.observer.ran, T2I_ADAPTER),
        )
        stack.attach(model.components["unet"])
        try:
            self.observer.attached(T2I_ADAPTER, stack)
            yield PassPart(step_hook=stack.clock.step_hook)
        finally:
            stack.detach()  # the cached UNet must never keep a pass's hook
