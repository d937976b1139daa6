"""BFL's Flux Control models as a conditioner: a canny or depth unit on Flux.1 dev served by
flux1-canny-dev-lora / flux1-depth-dev-lora or the full flux1-canny-dev / flux1-depth-dev
(unit_resolution.py resolves it to a FluxControlInfo when no Flux ControlNet of the type is
installed, or when the unit names it).

For the whole job the transformer becomes the Control model: a LoRA patches it
(flux_control_patch.py: the input layer widened, the LoRA's deltas times the unit's weight,
its norms), restored exactly after it; a full model's transformer takes its place in the
model's components (loaded once, kept for the next job), the model's own put back after
it. Every pass runs the family's control-model pipelines (diffusers'
FluxControlPipeline, FluxControlImg2ImgPipeline, FluxControlInpaintPipeline) with the
unit's image as `control_image`. The control image is a model input at every step, so the
model takes one unit, the whole sampling window, and no negative prompt (those pipelines
have none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from dreamwire import catalog
from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.engine.unit_planning import PlannedUnit
from dreamwire.backend.families import spec_for
from dreamwire.backend.library.weight_formats import stored_compressed
from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import flux_control_files, flux_control_patch
from .files import mtime
from .flux_control_files import FluxControlInfo
from .observer import FLUX_CONTROL
from .unit_resolution import UnitConditioner, pass_image


@dataclass
class ControlModelJob:
    unit: PlannedUnit
    control: flux_control_files.ControlLora | None = None  # read when the job attaches


class FluxControlConditioner(UnitConditioner):
    name = "conditioning.flux_control"
    kind = FLUX_CONTROL

    def __init__(self, observer=None, cache_size: int = 1):
        super().__init__(observer)
        self._models: BoundedCache = BoundedCache(cache_size)  # full models' transformers

    def resolve(self, ctx: JobContext) -> ControlModelJob | None:
        mine = super().resolve(ctx)
        if not mine:
            return None
        (first, *more) = mine
        where = f"control unit ({first.unit.type}, {first.info.name})"
        if more or len(ctx.plan.units) > 1:
            raise _refused(
                f"{where}: a Flux Control model runs alone (the model becomes a "
                f"{first.unit.type} model); give the job one control unit, or use Flux "
                "ControlNets to combine several"
            )
        unit = first.unit
        if unit.start > 0.0 or unit.end < 1.0:
            raise _refused(
                f"{where}: a Flux Control model takes its control image at every step; set the "
                "unit's start to 0 and end to 1"
            )
        if ctx.job.cfg > 1.0:
            raise _refused(
                f"{where}: Flux's control-model pipelines take no negative prompt; set CFG "
                "scale to 1 (the guidance is the Distilled CFG Scale)"
            )
        transformer = ctx.model.components.get(spec_for(ctx.model.family).denoiser)
        variant = catalog.variant_of(ctx.model.arch)
        if transformer is None or not spec_for(ctx.model.family).control_model_pipelines:
            raise _refused(f"{where}: {ctx.model.name} cannot run a Flux Control model")
        if variant:
            # BFL made them from dev: Fill and Kontext take other inputs, schnell has no
            # guidance input for the Control model's.
            raise _refused(
                f"{where}: Flux Control models are made from Flux.1 dev; {ctx.model.name} is a "
                f"Flux {variant.title()} model: run the unit on a Flux dev checkpoint"
            )
        if first.info.entry is not None:
            if unit.weight != 1.0:
                raise _refused(
                    f"{where}: a full Flux Control model has no strength; set the unit's "
                    "weight to 1, or use its Control LoRA, whose strength the weight sets"
                )
            return ControlModelJob(first)
        if stored_compressed(transformer):
            raise _refused(
                f"{where}: {ctx.model.name}'s weights are stored quantized (GGUF or fp8), and "
                "a Control LoRA's deltas would be rounded away; use an fp16/bf16 copy"
            )
        return ControlModelJob(first)

    @contextmanager
    def attach_job(self, ctx: JobContext, job: ControlModelJob) -> Iterator[None]:
        info = job.unit.info
        if info.entry is not None:
            with self._swapped(ctx, info):
                yield
            return
        job.control = flux_control_files.read(info)
        model = ctx.model
        weight = float(job.unit.unit.weight)
        with flux_control_patch.applied(model.components, job.control, weight, model.name):
            yield

    @contextmanager
    def _swapped(self, ctx: JobContext, info: FluxControlInfo) -> Iterator[None]:
        """The full model's transformer in the model's components for the job, on the
        device and in the dtype of the one it stands in for."""
        components = ctx.model.components
        own = components["transformer"]
        like = next(own.parameters())
        key = (str(info.path), mtime(info.path), str(like.device), str(ctx.device.dtype))
        control, _ = self._models.get(
            key, lambda: flux_control_files.load_model(info, ctx.device.dtype, like.device)
        )
        components["transformer"] = control
        try:
            yield
        finally:
            components["transformer"] = own

    def attach(self, ctx: JobContext, job: ControlModelJob, mode: str):
        # The pipelines VAE-encode a tensor control image as given: in [-1, 1], as their
        # image processor normalises a picture (2x - 1).
        image = 2.0 * pass_image(ctx, job.unit) - 1.0
        return nullcontext(PassPart(call_kwargs={"control_image": image}, control_model=True))


def _refused(message: str) -> DreamwireError:
    return DreamwireError(ErrorCode.MODEL_UNSUPPORTED, message)
