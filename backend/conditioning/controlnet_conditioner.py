"""ControlNet (1.0/1.1, diffusers, Union/ProMax) as a conditioner: the job's ControlNet units
(unit_resolution.py), and for each pass a ControlNet stack at that pass's size (Hires.fix's
second pass gets the control images at the larger size), handed to the pipeline as its
`controlnet` component, which makes the pass run the family's ControlNet pipeline.

The ControlNet folders also hold the T2I-Adapters and IP-Adapters, so this conditioner
answers for the folders as a whole: the control types they can serve (the welcome), whether
a unit of a type would find a file (SD upscale's tile unit), and, as the engine's
UnitPlanner, which file runs each unit of a job when the job is planned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch

from dreamwire.backend.engine.hooks import JobContext, PassPart
from dreamwire.backend.engine.unit_planning import (
    ControlImageMaker,
    PlannedUnit,
    UnitPlanner,
    UnitQuery,
)
from dreamwire.backend.families import spec_for
from dreamwire.backend.library import Kind, ModelLibrary
from dreamwire.shared.control_names import type_from_name
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job

from . import (
    controlnet_files,
    flux_controlnet,
    qwen_controlnet,
    sd3_controlnet,
    union,
    units,
    zimage_controlnet,
)
from .flux_control_stack import FluxControlStack
from .net_cache import NetCache
from .observer import CONTROLNET, StackObserver
from .qwen_control_stack import QwenControlStack
from .sd3_control_stack import Sd3ControlStack
from .unit_resolution import (
    UnitConditioner,
    hires_pass,
    library_roots,
    offers,
    pass_image,
    pick,
    plan_units,
)
from .zimage_control_stack import ZImageControlStack, hints_into


class ControlNetConditioner(UnitConditioner, UnitPlanner, ControlImageMaker):
    name = "conditioning.controlnet"
    kind = CONTROLNET

    def __init__(self, nets: NetCache, observer: StackObserver | None = None):
        super().__init__(observer)
        self.nets = nets  # shared with the T2I-Adapter conditioner

    @contextmanager
    def attach(self, ctx: JobContext, resolved: list[PlannedUnit], mode: str) -> Iterator[PassPart]:
        job, model = ctx.job, ctx.model
        controlnets = spec_for(model.family).controlnets
        if controlnets.model_class == flux_controlnet.MODEL_CLASS:
            yield self._flux_pass(ctx, resolved, mode, controlnets)
            return
        if controlnets.model_class == sd3_controlnet.MODEL_CLASS:
            # The SD3 pipeline samples the control latents from torch's global generator.
            yield self._latent_pass(ctx, resolved, mode, controlnets, Sd3ControlStack, _seeded)
            return
        if controlnets.model_class == qwen_controlnet.MODEL_CLASS and mode == "inpaint":
            yield self._qwen_inpaint_pass(ctx, resolved)
            return
        if controlnets.model_class == qwen_controlnet.MODEL_CLASS:
            # Qwen's samples them from the job's generator, as diffusers does.
            yield self._latent_pass(ctx, resolved, mode, controlnets, QwenControlStack)
            return
        if controlnets.model_class == zimage_controlnet.MODEL_CLASS:
            yield self._zimage_pass(ctx, resolved, mode, controlnets)
            return
        hires = hires_pass(ctx, mode)
        nets, stack_units, images = [], [], []
        for r in resolved:
            nets.append(self.nets.get(r.info, model, ctx.device))
            stack_units.append(units.stack_unit(r.unit, r.info, hires))
            images.append(pass_image(ctx, r))
        # Units on one ControlNet Union model run as one union call (union.py).
        nets, stack_units, images = union.fold(
            [r.info for r in resolved], [r.unit.type for r in resolved], nets, stack_units, images
        )
        stack = union.ControlStack(
            nets, stack_units, cfg=job.cfg > 1.0, on_ran=partial(self.observer.ran, CONTROLNET)
        )
        self.observer.attached(CONTROLNET, stack)
        call = _neutral_call(controlnets.image_key(mode), images)
        # The stack is the pass's own pipeline component: nothing to restore after it.
        yield PassPart({"controlnet": stack}, call, stack.clock.step_hook)

    def _flux_pass(self, ctx: JobContext, resolved: list[PlannedUnit], mode: str, controlnets):
        """Flux: one FluxControlNetModel call per unit (flux_control_stack.py), the units'
        Union modes from the family spec's table."""
        nets, stack_units, images, modes = [], [], [], []
        for i, r in enumerate(resolved):
            nets.append(self.nets.get(r.info, ctx.model, ctx.device))
            stack_units.append(units.stack_unit(r.unit, r.info, False))
            # The Flux ControlNet pipelines VAE-encode a tensor control image as given (or,
            # for XLabs' nets, hand it to their pixel hint encoder), so it goes in as the
            # VAE and x-flux take pixels, in [-1, 1] (the image processor's 2x - 1).
            images.append(2.0 * pass_image(ctx, r) - 1.0)
            where = f"control unit {i} ({r.unit.type})"
            union = flux_controlnet.union_kind(r.info)
            modes.append(
                flux_controlnet.control_mode(r.unit.type, r.info, ctx.model.family, where)
                if union
                else None
            )
        stack = FluxControlStack(nets, stack_units, on_ran=partial(self.observer.ran, CONTROLNET))
        self.observer.attached(CONTROLNET, stack)
        n = len(nets)
        call = {
            controlnets.image_key(mode): images,
            "control_mode": modes,
            # Weights and windows are the stack's (A1111's rule); the pipeline's are neutral.
            "controlnet_conditioning_scale": [1.0] * n,
            "control_guidance_start": [0.0] * n,
            "control_guidance_end": [1.0] * n,
        }
        return PassPart({"controlnet": stack}, call, stack.clock.step_hook)

    def _latent_pass(
        self,
        ctx: JobContext,
        resolved: list[PlannedUnit],
        mode: str,
        controlnets,
        stack_class,
        around_call=None,
    ):
        """SD3, Qwen-Image: one ControlNet call per unit through the family's stack
        (sd3_control_stack.py, qwen_control_stack.py), each control picture VAE-encoded by
        the pipeline."""
        nets, stack_units, images = [], [], []
        for r in resolved:
            nets.append(self.nets.get(r.info, ctx.model, ctx.device))
            stack_units.append(units.stack_unit(r.unit, r.info, False))
            # A tensor control image is VAE-encoded as given: in [-1, 1], as the VAE takes
            # pixels (the pipeline's image processor's own 2x - 1 for a picture).
            images.append(2.0 * pass_image(ctx, r) - 1.0)
        stack = stack_class(nets, stack_units, on_ran=partial(self.observer.ran, CONTROLNET))
        self.observer.attached(CONTROLNET, stack)
        call = _neutral_call(controlnets.image_key(mode), images)
        return PassPart({"controlnet": stack}, call, stack.clock.step_hook, around_call=around_call)

    def _qwen_inpaint_pass(self, ctx: JobContext, resolved: list[PlannedUnit]) -> PassPart:
        """InstantX's Qwen-Image Inpainting net, the one unit of an inpaint job (the plan
        refuses others): diffusers' QwenImageControlNetInpaintPipeline takes the net itself
        (the pass's picture and mask are its control_image and control_mask: passes.py),
        the unit's weight as its conditioning scale and its window as diffusers' (skip step
        i of n when i/n < start or (i+1)/n > end). The pipeline samples the masked
        picture's VAE latents from torch's global generator: drawn from a fixed seed."""
        (r,) = resolved
        net = self.nets.get(r.info, ctx.model, ctx.device)
        call = {
            "controlnet_conditioning_scale": float(r.unit.weight),
            "control_guidance_start": float(r.unit.start),
            "control_guidance_end": float(r.unit.end),
        }
        return PassPart({"controlnet": net}, call, around_call=_seeded)

    def _zimage_pass(self, ctx: JobContext, resolved: list[PlannedUnit], mode: str, controlnets):
        """Z-Image: the one Fun ControlNet unit (zimage_control_stack.py; the plan refuses
        more), its picture VAE-encoded as given, in [-1, 1]: by the ControlNet pipeline,
        or, in a mode the spec runs through the denoiser, around the family's own."""
        (r,) = resolved
        net = self.nets.get(r.info, ctx.model, ctx.device)
        stack = ZImageControlStack(
            net,
            units.stack_unit(r.unit, r.info, False),
            on_ran=partial(self.observer.ran, CONTROLNET),
        )
        self.observer.attached(CONTROLNET, stack)
        image = 2.0 * pass_image(ctx, r) - 1.0
        if mode in controlnets.through_denoiser:
            return PassPart(
                step_hook=stack.clock.step_hook, around_call=partial(hints_into, stack, image)
            )
        call = {
            controlnets.image_key(mode): image,
            "controlnet_conditioning_scale": 1.0,  # the unit's weight is the stack's
        }
        return PassPart({"controlnet": stack}, call, stack.clock.step_hook)

    def frame_controlnet(self, library, name: str, kind: str, model, device):
        """The ControlNet `name` ("": the first of type `kind` made for the model) for an
        AnimateDiff job's per-frame control (engine/animatediff.py FrameControlNets),
        checked against the model and loaded once."""
        unet = dict(model.components["unet"].config)
        if name:
            entry = library.find(Kind.CONTROLNET, name)
            info = controlnet_files.inspect(entry.path, entry.name)
            if not isinstance(info, controlnet_files.ControlNetInfo):  # an adapter file
                raise DreamwireError(
                    ErrorCode.INVALID_JOB, f"{name} is not a ControlNet (per-frame controls)"
                )
            controlnet_files.check_supported(info)
            controlnet_files.check_compatible(info, unet, model.name, model.family)
            return self.nets.get(info, model, device)
        for entry in library.entries(Kind.CONTROLNET):
            if type_from_name(entry.name) != kind:
                continue
            info = controlnet_files.inspect(entry.path, entry.name)
            try:
                if not isinstance(info, controlnet_files.ControlNetInfo):
                    continue
                controlnet_files.check_supported(info)
                controlnet_files.check_compatible(info, unet, model.name, model.family)
            except DreamwireError:
                continue
            return self.nets.get(info, model, device)
        raise DreamwireError(
            ErrorCode.CONTROLNET_NOT_FOUND,
            f"no {kind} ControlNet for {model.name} in the ControlNet folders",
        )

    def control_image(self, job: Job, library: ModelLibrary) -> np.ndarray:
        """A preprocess job's map (units.annotated), the annotator weights looked for in the
        library's roots as a generation's unit looks for them."""
        return units.annotated(job, library_roots(library))

    def capabilities(self, library) -> dict:
        """The welcome's control_types / control_missing (capabilities.py) and the
        preprocessors a unit or a preprocess job may name."""
        from .capabilities import control_capabilities
        from .preprocess import names

        return {**control_capabilities(library, pick), "preprocessors": names()}

    def offers_control(self, query: UnitQuery, kind: str) -> bool:
        return offers(query, kind)

    def plan_units(self, query: UnitQuery, units: Sequence[ControlUnit]) -> tuple[PlannedUnit, ...]:
        """Every control unit of the job, whatever kind runs it (unit_resolution.py)."""
        return plan_units(query, units)


def _neutral_call(image_key: str, images: list) -> dict:
    """The pipeline's control arguments: the images, and a neutral scale and full window
    per unit (weights and windows are the stack's, by A1111's rule)."""
    n = len(images)
    return {
        image_key: images,
        "controlnet_conditioning_scale": [1.0] * n,
        "control_guidance_start": [0.0] * n,
        "control_guidance_end": [1.0] * n,
    }


# The SD3 ControlNet pipeline samples each control picture's VAE latents from torch's global
# generator (no `generator` argument reaches it): drawn from this fixed seed, the same job
# gives the same picture every time.
CONTROL_LATENT_SEED = 0


@contextmanager
def _seeded(call) -> Iterator[None]:
    with torch.random.fork_rng():
        torch.manual_seed(CONTROL_LATENT_SEED)
        yield
