"""Which file serves each control unit of a job, resolved once for all three kinds.

ControlNets, T2I-Adapters and IP-Adapters share the ControlNet folders, and a unit's type
does not say which kind serves it (a depth unit may pick a T2I-Adapter, a type without a
ControlNet of its own a Union model). So the units are resolved here, in the job's order,
once per job (the first of the three conditioners to ask does it; the others read the same
list): each unit's file is found (named, or picked for the base model), checked against the
base model before anything loads, and written to the infotext as A1111's ControlNet
extension writes it ("ControlNet N", every kind in one numbering). The info's class then
says which conditioner runs the unit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.engine.hooks import Conditioner, JobContext
from dreamwire.backend.families import Reference, spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.model_names import strip_suffix

from . import (
    controlnet_files,
    flux_control_files,
    flux_controlnet,
    ip_adapter_blocks,
    ip_adapter_files,
    redux_files,
    union,
    unit_infotext,
    units,
)
from .controlnet_files import AnyUnitFile
from .files import library_entries, mtime
from .ip_adapter_files import IPAdapterInfo
from .observer import NoObserver, StackObserver
from .t2i_adapter import AdapterInfo

log = logging.getLogger("dreamwire.conditioning")


# What each file in the ControlNet folders is (read from its header): small, but one per
# file ever seen.
_INFO: BoundedCache[AnyUnitFile] = BoundedCache(512)


def inspect_cached(path: Path, name: str) -> AnyUnitFile:
    return _INFO.get((str(path), mtime(path)), lambda: controlnet_files.inspect(path, name))[0]


@dataclass
class ResolvedUnit:
    unit: ControlUnit
    info: AnyUnitFile  # its class says the kind: ControlNetInfo, AdapterInfo, IPAdapterInfo
    # The image encoder: an IP-Adapter's CLIP, Flux Redux's SigLIP.
    encoder: ip_adapter_files.EncoderFile | redux_files.SiglipFile | None = None


@dataclass
class ResolvedUnits:
    """The job's units resolved (JobContext.state_of), shared by the three unit kinds."""

    units: list[ResolvedUnit] | None = None


def resolve_units(ctx) -> list[ResolvedUnit]:
    """The job's control units with their files, resolved on the first call of a job."""
    state = ctx.state_of(ResolvedUnits)
    if state.units is None:
        state.units = _resolve(ctx) if ctx.controls else []
        if state.units:
            ctx.handled.add("controls")
            # The A1111 ControlNet extension's "ControlNet N" entries, with the models picked.
            ctx.infotext_extra.update(unit_infotext.fields(state.units, ctx.job))
    return state.units


class UnitConditioner(Conditioner):
    """The conditioner of one kind of control unit: it runs the job's units whose file is a
    `runs` (ControlNetInfo, AdapterInfo or IPAdapterInfo); `observer` is told its stacks."""

    runs: ClassVar[type]

    def __init__(self, observer: StackObserver | None = None):
        self.observer: StackObserver = observer or NoObserver()

    def resolve(self, ctx: JobContext) -> list[ResolvedUnit] | None:
        return [r for r in resolve_units(ctx) if isinstance(r.info, self.runs)] or None


def denoiser_config(model) -> dict:
    """The base model's UNet or transformer config: what its ControlNets must match."""
    return dict(model.components[spec_for(model.family).denoiser].config)


# Which Support flag (families/spec.py) a unit's file needs beyond `controlnet` (checked at
# plan time): a unit's type does not say that a T2I-Adapter serves it.
_KIND_FLAGS = ((AdapterInfo, "t2i_adapter"),)


def _check_family_runs(info, family: str, where: str) -> None:
    spec = spec_for(family)
    for cls, flag in _KIND_FLAGS:
        if isinstance(info, cls) and not getattr(spec.support, flag):
            refusal = spec.refusal(flag)
            raise DreamwireError(refusal.code, f"{where}: {info.name}: {refusal.message}")


def _resolve(ctx) -> list[ResolvedUnit]:
    model = ctx.model
    unet_config = denoiser_config(model)
    available = library_entries(ctx.library, "controlnet")
    redux = spec_for(model.family).reference is Reference.REDUX
    resolved = []
    for i, unit in enumerate(ctx.controls):
        where = f"control unit {i} ({unit.type})"
        units.check_image(unit, where)
        if redux and unit.type in ip_adapter_blocks.TYPES:  # the family's reference kind
            resolved.append(ResolvedUnit(unit, *redux_files.resolve_unit(ctx, unit, where)))
            continue
        if unit.model:
            path = available.get(unit.model) or available.get(strip_suffix(unit.model))
            control = None if path else _control_model(ctx, unit, unit.model)
            if control is not None:  # a Flux Control LoRA named by the unit
                resolved.append(ResolvedUnit(unit, control))
                continue
            if path is None:
                raise DreamwireError(
                    ErrorCode.CONTROLNET_NOT_FOUND,
                    f"{where}: ControlNet {unit.model!r} not found; available: "
                    f"{', '.join(sorted(available)) or 'none'}",
                )
            info = inspect_cached(path, unit.model)
        else:
            try:
                info = pick(unit.type, available, unet_config, model, where)
            except DreamwireError as exc:
                # No ControlNet of the type: a Flux Control LoRA of it serves the unit.
                control = _control_model(ctx, unit)
                if control is None:
                    raise _with_control_hint(exc, model.family, unit.type) from None
                resolved.append(ResolvedUnit(unit, control))
                continue
        controlnet_files.check_supported(info)
        _check_family_runs(info, model.family, where)
        controlnet_files.check_compatible(info, unet_config, model.name, model.family)
        if union.is_union(info):
            union.control_mode(unit.type, info, where)  # a mode the model has, or fail now
        if flux_controlnet.union_kind(info):
            flux_controlnet.control_mode(unit.type, info, model.family, where)
        if flux_controlnet.is_flux(info) and unit.control_mode != "balanced":
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{where}: control mode {unit.control_mode!r} (A1111's soft injection into a "
                "UNet's residuals) has no Flux meaning; use balanced",
            )
        encoder = _ip_encoder(ctx, unit, info, where)
        if info.type is not None and info.type != ip_adapter_blocks.file_type(unit.type):
            # Legitimate (e.g. a lineart model fed a scribble), so not an error; record it.
            log.info("%s: using %s, a %s ControlNet", where, info.name, info.type)
        resolved.append(ResolvedUnit(unit, info, encoder))
    return resolved


def _control_model(ctx, unit, name: str = "") -> flux_control_files.FluxControlInfo | None:
    """The Flux Control LoRA serving a canny/depth unit on a family with control-model
    pipelines: the one `name`s, or one of the unit's type; None elsewhere."""
    if spec_for(ctx.model.family).control_model_pipelines is None:
        return None
    if not name and unit.type not in flux_control_files.TYPES:
        return None
    return flux_control_files.find(ctx.library, unit.type, name)


def _with_control_hint(exc: DreamwireError, family: str, kind: str) -> DreamwireError:
    """A missing canny/depth model on Flux: say that BFL's Control LoRA serves it too."""
    if spec_for(family).control_model_pipelines is None or kind not in flux_control_files.TYPES:
        return exc
    hint = f"; or a Flux Control LoRA (flux1-{kind}-dev-lora.safetensors) in models/Lora"
    return DreamwireError(exc.code, exc.message + hint, exc.job_id)


def _ip_encoder(ctx, unit, info, where) -> ip_adapter_files.EncoderFile | None:
    """IP-Adapter units: the adapter fits the UNet and its CLIP encoder is there."""
    is_ip = isinstance(info, IPAdapterInfo)
    if (unit.type in ip_adapter_blocks.TYPES) != is_ip:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{where}: {info.name} is an IP-Adapter; use a unit of type "
            f"{', '.join(ip_adapter_blocks.TYPES)}"
            if is_ip
            else f"{where}: {info.name} is not an IP-Adapter (an ip-adapter unit needs an "
            "ip-adapter_*.safetensors file)",
        )
    if not is_ip:
        return None
    assert info.ip_adapter is not None, "check_supported refuses pickled IP-Adapters"
    if unit.preprocessor not in ip_adapter_files.PREPROCESSORS:
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE,
            f"{where}: preprocessor {unit.preprocessor!r} is not an IP-Adapter one; known: "
            f"{', '.join(p for p in ip_adapter_files.PREPROCESSORS if p)}",
        )
    unet = ctx.model.components["unet"]
    # A Style/Composition map with no block in this UNet fails here, before any step.
    ip_adapter_blocks.block_factors(unit.type, ctx.model.family, unet.config)
    problems = ip_adapter_files.mismatch(info.ip_adapter, unet)
    if problems:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{where}: IP-Adapter {info.name} does not fit {ctx.model.name} "
            f"({'; '.join(problems)})",
        )
    if unet.encoder_hid_proj is not None:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: {ctx.model.name}'s UNet already projects its encoder states; "
            "IP-Adapters are not supported on it",
        )
    library = ctx.library
    roots = getattr(library, "roots", []) if library is not None else []
    return ip_adapter_files.pick_encoder(info.ip_adapter, info.name, roots, unit.preprocessor)


def pick(kind, available, unet_config, model, where) -> AnyUnitFile:
    """The file a `kind` unit naming no model runs on `model`: a ControlNet of the type
    (1.1 files first), else a T2I-Adapter, else a Union model with the type's mode."""
    kind = ip_adapter_blocks.file_type(kind)  # Style/Composition run IP-Adapter files
    candidates = []
    for name, path in sorted(available.items()):
        if controlnet_files.type_from_name(name) != kind:
            continue
        try:  # a damaged or foreign file is skipped here, and reported if named
            info = inspect_cached(path, name)
            controlnet_files.check_supported(info)
            controlnet_files.check_compatible(info, unet_config, model.name, model.family)
        except DreamwireError:
            continue
        candidates.append(info)
    if not candidates:
        found = unions(kind, available, unet_config, model, where)
        if found:
            return found[0]
        raise DreamwireError(
            ErrorCode.CONTROLNET_NOT_FOUND,
            f"{where}: no {kind} ControlNet for {model.name} in the ControlNet folders "
            f"(have: {', '.join(sorted(available)) or 'none'})",
        )

    # Prefer ControlNets to T2I-Adapters, and ControlNet 1.1 files (control_v11...),
    # when several fit; of IP-Adapters the plain one (Krita AI Diffusion's Reference
    # default) before plus.
    def rank(c):
        plus = isinstance(c, IPAdapterInfo) and c.ip_adapter is not None and c.ip_adapter.plus
        return (isinstance(c, AdapterInfo), plus, not c.name.startswith("control_v11"), c.name)

    candidates.sort(key=rank)
    return candidates[0]


def unions(kind, available, unet_config, model, where) -> list:
    """No ControlNet of this type: a Union model that has the type's mode will do, as
    Krita AI Diffusion falls back to one for SDXL (ProMax first: it has every mode)."""
    found = []
    for name, path in sorted(available.items()):
        try:  # headers only, cached
            info = inspect_cached(path, name)
            if not (union.is_union(info) or flux_controlnet.union_kind(info)):
                continue
            controlnet_files.check_supported(info)
            controlnet_files.check_compatible(info, unet_config, model.name, model.family)
            if union.is_union(info):
                union.control_mode(kind, info, where)
            else:
                flux_controlnet.control_mode(kind, info, model.family, where)
        except DreamwireError:
            continue
        found.append(info)
    found.sort(key=lambda c: (not c.detail.get("promax", False), c.name))
    return found


def offers(ctx, kind: str) -> bool:
    """Whether a `kind` unit naming no model would find a file for ctx's model."""
    available = library_entries(ctx.library, "controlnet")
    unet_config = denoiser_config(ctx.model)
    try:
        pick(kind, available, unet_config, ctx.model, f"{kind} unit")
    except DreamwireError:
        return False
    return True


def hires_pass(ctx, mode: str) -> bool:
    """Whether this pass is Hires.fix's second (units' soft injection follows A1111 there)."""
    job = ctx.job
    return job.hires is not None and job.mode is JobMode.TXT2IMG and mode == JobMode.IMG2IMG


def pass_image(ctx, r: ResolvedUnit):
    """The unit's control image at the pass size, on the pass's device and dtype."""
    return units.control_tensor(
        r.unit, ctx.job, ctx.width, ctx.height, r.info, ctx.inpaint_region, ctx.canvas
    ).to(device=ctx.device.device, dtype=ctx.device.dtype)
