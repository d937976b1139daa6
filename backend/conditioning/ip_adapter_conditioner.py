"""IP-Adapters (plain, plus, Style/Composition) as a conditioner: the job's IP-Adapter units
(planned by unit_resolution.py), loaded into the UNet at the job's first pass (it needs the picture as
the runner laid it out) and kept for the job (every pass reads the same reference), the
start/end window followed per pass by the step hook; the UNet is restored after the job
(ip_adapter.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.engine.unit_planning import PlannedUnit

from . import control_image, ip_adapter, ip_adapter_blocks, ip_adapter_files, on_canvas, units
from .files import mtime
from .ip_adapter_files import IPAdapterInfo
from .observer import IP_ADAPTER, StackObserver
from .unit_resolution import UnitConditioner, check_loaded


@dataclass
class IPAdapterJob:
    units: list[PlannedUnit]
    stack: ip_adapter.IPAdapterStack | None = None  # made at the job's first pass


class IPAdapterConditioner(UnitConditioner):
    name = "conditioning.ip_adapter"
    kind = IP_ADAPTER

    def __init__(self, cache_size: int = 2, observer: StackObserver | None = None):
        super().__init__(observer)
        # IP-Adapter weights and CLIP encoders (two per unit: twice the room).
        self._cache: BoundedCache[Any] = BoundedCache(2 * cache_size)

    def resolve(self, ctx: JobContext) -> IPAdapterJob | None:
        mine = super().resolve(ctx)
        if not mine:
            return None
        check_loaded(mine, ctx.model)  # the loaded UNet's share of the checks
        return IPAdapterJob(mine)

    @contextmanager
    def attach_job(self, ctx: JobContext, job: IPAdapterJob) -> Iterator[None]:
        try:
            yield
        finally:
            if job.stack is not None:
                job.stack.detach()  # processors, projection and config as they were

    @contextmanager
    def attach(self, ctx: JobContext, job: IPAdapterJob, mode: str) -> Iterator[PassPart]:
        if job.stack is None:
            job.stack = self._stack(ctx, job.units)
            self.observer.attached(IP_ADAPTER, job.stack)
            job.stack.attach(ctx.model.components["unet"])
        job.stack.set_step(0, 0)  # a new pass starts at its step 0
        yield PassPart(step_hook=job.stack.clock.step_hook)

    def _cached(self, key: tuple, make):
        return self._cache.get(key, make)[0]

    def _stack(self, ctx: JobContext, resolved: list[PlannedUnit]) -> ip_adapter.IPAdapterStack:
        dev = ctx.device
        ip_units = []
        for i, r in enumerate(resolved):
            info, enc = r.info, r.encoder
            assert isinstance(info, IPAdapterInfo) and info.ip_adapter is not None
            assert enc is not None, "unit_resolution picks every IP-Adapter unit's encoder"
            where = f"IP-Adapter unit {i} ({info.name})"
            path = info.path
            state = self._cached(
                ("ip", str(path), mtime(path)),
                lambda p=path, n=info.name: ip_adapter_files.load_adapter(p, n),
            )
            encoder = self._cached(
                ("clip", str(enc.path), mtime(enc.path), str(dev.device), str(dev.dtype)),
                lambda e=enc: ip_adapter_files.load_encoder(e, dev.dtype, dev.device),
            )
            if r.unit.image is None:  # A1111: the img2img picture is the reference
                rgb, _ = on_canvas.picture(ctx.canvas, "ip-adapter", where)
            else:
                rgb, _ = control_image.split_channels(r.unit.image, f"{where} image")
            stack_unit = units.stack_unit(r.unit, info, hires_pass=False)
            unet_config = ctx.model.components["unet"].config
            blocks = ip_adapter_blocks.block_factors(r.unit.type, ctx.model.family, unet_config)
            ip_units.append(
                ip_adapter.IPUnit(state, info.ip_adapter.plus, encoder, rgb, stack_unit, blocks)
            )
        return ip_adapter.IPAdapterStack(
            ip_units, cfg=ctx.job.cfg > 1.0, on_ran=partial(self.observer.ran, IP_ADAPTER)
        )
