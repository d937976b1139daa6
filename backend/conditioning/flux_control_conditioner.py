"""BFL Flux Control LoRAs as a conditioner: a canny or depth unit on Flux.1 dev served by
flux1-canny-dev-lora / flux1-depth-dev-lora (unit_resolution.py resolves it to a
FluxControlInfo when no Flux ControlNet of the type is installed, or when the unit names it).

For the whole job the transformer becomes the Control model (flux_control_patch.py: the
input layer widened, the LoRA's deltas times the unit's weight, its norms), restored exactly
after it; every pass runs the family's control-model pipelines (diffusers'
FluxControlPipeline, FluxControlImg2ImgPipeline, FluxControlInpaintPipeline) with the
unit's image as `control_image`. The control image is a model input at every step, so the
model takes one unit, the whole sampling window, and no negative prompt (those pipelines
have none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.families import spec_for
from dreamwire.backend.library.weight_formats import stored_compressed
from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import flux_control_files, flux_control_patch
from .flux_control_files import FluxControlInfo
from .unit_resolution import ResolvedUnit, UnitConditioner, pass_image, resolve_units


@dataclass
class ControlModelJob:
    unit: ResolvedUnit
    control: flux_control_files.ControlLora | None = None  # read when the job attaches


class FluxControlConditioner(UnitConditioner):
    name = "conditioning.flux_control"
    runs = FluxControlInfo

    def resolve(self, ctx: JobContext) -> ControlModelJob | None:
        mine = super().resolve(ctx)
        if not mine:
            return None
        (first, *more) = mine
        where = f"control unit ({first.unit.type}, {first.info.name})"
        if more or len(resolve_units(ctx)) > 1:
            raise _refused(
                f"{where}: a Flux Control LoRA runs alone (it turns the model into a {first.unit.type} "
                "model); give the job one control unit, or use Flux ControlNets to combine several"
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
        if transformer is None or not spec_for(ctx.model.family).control_model_pipelines:
            raise _refused(f"{where}: {ctx.model.name} cannot run a Flux Control LoRA")
        if stored_compressed(transformer):
            raise _refused(
                f"{where}: {ctx.model.name}'s weights are stored quantized (GGUF or fp8), and "
                "a Control LoRA's deltas would be rounded away; use an fp16/bf16 copy"
            )
        return ControlModelJob(first)

    @contextmanager
    def attach_job(self, ctx: JobContext, job: ControlModelJob) -> Iterator[None]:
        job.control = flux_control_files.read(job.unit.info)
        model = ctx.model
        weight = float(job.unit.unit.weight)
        with flux_control_patch.applied(model.components, job.control, weight, model.name):
            yield

    def attach(self, ctx: JobContext, job: ControlModelJob, mode: str):
        # The pipelines VAE-encode a tensor control image as given: in [-1, 1], as their
        # image processor normalises a picture (2x - 1).
        image = 2.0 * pass_image(ctx, job.unit) - 1.0
        return nullcontext(PassPart(call_kwargs={"control_image": image}, control_model=True))


def _refused(message: str) -> DreamwireError:
    return DreamwireError(ErrorCode.MODEL_UNSUPPORTED, message)
