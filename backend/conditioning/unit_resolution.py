"""Which file serves each control unit of a job, resolved at plan time for every kind.

ControlNets, T2I-Adapters and IP-Adapters share the ControlNet folders, and a unit's type
does not say which kind serves it (a depth unit may pick a T2I-Adapter, a type without a
ControlNet of its own a Union model). So the units are resolved here, in the job's order,
when the engine plans the job (`plan_units`, the engine's UnitPlanner seam, before any model
loads): each unit's file is found (named, or picked for the base model), checked against the
base model's denoiser config as the library reads it from files, and given its infotext
entry as A1111's ControlNet extension writes it ("ControlNet N", every kind in one
numbering). The planned unit's `kind` says which conditioner runs it; each conditioner
takes its kind's units from the plan (`UnitConditioner.resolve`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.engine.hooks import Conditioner, JobContext
from dreamwire.backend.engine.unit_planning import PlannedUnit, UnitQuery
from dreamwire.backend.families import Reference, spec_for
from dreamwire.backend.library import ModelLibrary
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
    qwen_controlnet,
    redux_files,
    union,
    unit_infotext,
    units,
    zimage_controlnet,
)
from .controlnet_files import AnyUnitFile, ControlNetInfo
from .files import library_entries, mtime
from .flux_control_files import FluxControlInfo
from .ip_adapter_files import IPAdapterInfo
from .observer import (
    CONTROLNET,
    FLUX_CONTROL,
    IP_ADAPTER,
    REDUX,
    T2I_ADAPTER,
    NoObserver,
    StackObserver,
)
from .redux_files import ReduxInfo
from .t2i_adapter import AdapterInfo

log = logging.getLogger("dreamwire.conditioning")

# Which conditioner runs a unit, by the class of its file (PlannedUnit.kind).
_KINDS = (
    (ControlNetInfo, CONTROLNET),
    (AdapterInfo, T2I_ADAPTER),
    (IPAdapterInfo, IP_ADAPTER),
    (ReduxInfo, REDUX),
    (FluxControlInfo, FLUX_CONTROL),
)

# What each file in the ControlNet folders is (read from its header): small, but one per
# file ever seen.
_INFO: BoundedCache[AnyUnitFile] = BoundedCache(512)


def inspect_cached(path: Path, name: str) -> AnyUnitFile:
    return _INFO.get((str(path), mtime(path)), lambda: controlnet_files.inspect(path, name))[0]


def kind_of(info) -> str:
    return next(kind for cls, kind in _KINDS if isinstance(info, cls))


class UnitConditioner(Conditioner):
    """The conditioner of one kind of control unit: it runs the plan's units of its `kind`
    (CONTROLNET, T2I_ADAPTER, IP_ADAPTER or REDUX); `observer` is told its stacks."""

    kind: ClassVar[str]

    def __init__(self, observer: StackObserver | None = None):
        self.observer: StackObserver = observer or NoObserver()

    def resolve(self, ctx: JobContext) -> list[PlannedUnit] | None:
        mine = ctx.plan.units_of(self.kind) if ctx.plan is not None else ()
        return list(mine) or None


# Which Support flag (families/spec.py) a unit's file needs beyond `controlnet` (checked at
# plan time): a unit's type does not say that a T2I-Adapter serves it.
_KIND_FLAGS = ((AdapterInfo, "t2i_adapter"),)


def _check_family_runs(info, family: str, where: str) -> None:
    spec = spec_for(family)
    for cls, flag in _KIND_FLAGS:
        if isinstance(info, cls) and not getattr(spec.support, flag):
            refusal = spec.refusal(flag)
            raise DreamwireError(refusal.code, f"{where}: {info.name}: {refusal.message}")


def plan_units(query: UnitQuery, controls: Sequence[ControlUnit]) -> tuple[PlannedUnit, ...]:
    """`controls` resolved to their files for `query.model`, in order, every check made."""
    model = query.model
    unet_config = dict(model.denoiser_config)
    available = library_entries(query.library, "controlnet")
    redux = spec_for(model.family).reference is Reference.REDUX
    planned = []
    for i, unit in enumerate(controls):
        where = f"control unit {i} ({unit.type})"
        units.check_image(unit, where)
        if redux and unit.type in ip_adapter_blocks.TYPES:  # the family's reference kind
            info, encoder = redux_files.resolve_unit(query, unit, where)
            planned.append(_planned(i, unit, info, encoder, query))
            continue
        if unit.model:
            path = available.get(unit.model) or available.get(strip_suffix(unit.model))
            control = None if path else _control_model(query, unit, unit.model)
            if control is not None:  # a Flux Control LoRA named by the unit
                planned.append(_planned(i, unit, control, None, query))
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
                control = _control_model(query, unit)
                if control is None:
                    raise _with_control_hint(exc, model.family, unit.type) from None
                planned.append(_planned(i, unit, control, None, query))
                continue
        controlnet_files.check_supported(info)
        _check_family_runs(info, model.family, where)
        controlnet_files.check_compatible(info, unet_config, model.name, model.family)
        if union.is_union(info):
            union.control_mode(unit.type, info, where)  # a mode the model has, or fail now
        if flux_controlnet.union_kind(info):
            flux_controlnet.control_mode(unit.type, info, model.family, where)
        if controlnet_files.transformer_kind(info) and unit.control_mode != "balanced":
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{where}: control mode {unit.control_mode!r} (A1111's soft injection into a "
                f"UNet's residuals) has no {info.family} meaning; use balanced",
            )
        encoder = _ip_encoder(query, unit, info, where)
        if info.type is not None and info.type != ip_adapter_blocks.file_type(unit.type):
            # Legitimate (e.g. a lineart model fed a scribble), so not an error; record it.
            log.info("%s: using %s, a %s ControlNet", where, info.name, info.type)
        planned.append(_planned(i, unit, info, encoder, query))
    _check_flux_kinds_apart(planned)
    _check_zimage_units(planned)
    _check_qwen_inpainting(planned, query.job)
    return tuple(planned)


def _check_qwen_inpainting(planned: list[PlannedUnit], job) -> None:
    """diffusers' QwenImageControlNetInpaintPipeline runs InstantX's Inpainting net alone,
    the job's picture and mask its control, from pure noise (it has no strength); the Union
    has no inpaint pipeline and the Inpainting net no other."""
    nets = [p for p in planned if getattr(p.info, "layout", "") in qwen_controlnet.LAYOUTS]
    inpaint = (job.mode or job.implied_mode()) == JobMode.INPAINT
    label = "InstantX's Qwen-Image ControlNet Inpainting"
    for p in nets:
        where = f"control unit {p.index} ({p.name})"
        if not qwen_controlnet.is_inpainting(p.info):
            if inpaint:
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"{where}: Qwen-Image inpaint jobs run only {label} (a unit of type "
                    "inpaint); its Union ControlNet runs in txt2img jobs",
                )
            continue
        if not inpaint:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{where}: {label} takes the job's picture and mask as its control; use it "
                "in an inpaint job",
            )
        if len(planned) > 1:
            other = next(o for o in planned if o is not p)
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"control units {p.index} and {other.index}: {label} runs alone (diffusers' "
                "QwenImageControlNetInpaintPipeline takes one net); keep one",
            )
        if job.strength < 1.0:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{where}: {label} repaints the masked area from pure noise (diffusers' "
                "QwenImageControlNetInpaintPipeline has no denoising strength); set "
                "denoising strength 1",
            )


def _check_zimage_units(planned: list[PlannedUnit]) -> None:
    """diffusers' Z-Image ControlNet pipeline takes one control picture."""
    nets = [p for p in planned if getattr(p.info, "layout", "") in zimage_controlnet.LAYOUTS]
    if len(nets) > 1:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"control units {nets[0].index} and {nets[1].index}: Z-Image runs one ControlNet "
            "unit per job (its Fun ControlNet Union serves every control type from one "
            "picture); keep one",
        )


def _check_flux_kinds_apart(planned: list[PlannedUnit]) -> None:
    """diffusers' Flux ControlNet pipelines read the first net only to decide whether the
    control images go in as pixels (XLabs) or VAE latents (InstantX/Shakker), and how the
    transformer spreads the samples over its blocks: the two kinds cannot share a job."""
    nets = [p for p in planned if flux_controlnet.is_flux(p.info)]
    xlabs = [p for p in nets if flux_controlnet.is_xlabs(p.info)]
    if xlabs and len(xlabs) != len(nets):
        other = next(p for p in nets if not flux_controlnet.is_xlabs(p.info))
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"control units {xlabs[0].index} ({xlabs[0].name}, XLabs) and {other.index} "
            f"({other.name}): XLabs' Flux ControlNets take the control picture as pixels and "
            "InstantX/Shakker's as latents, which one job cannot mix; use ControlNets of one "
            "kind",
        )


def _planned(i: int, unit: ControlUnit, info, encoder, query: UnitQuery) -> PlannedUnit:
    return PlannedUnit(
        index=i,
        unit=unit,
        kind=kind_of(info),
        name=info.name,
        path=Path(info.path),
        info=info,
        encoder=encoder,
        infotext=unit_infotext.entry(unit, info, library_roots(query.library)),
        denoiser_entry=info.entry if isinstance(info, FluxControlInfo) else None,
    )


def _control_model(
    query: UnitQuery, unit, name: str = ""
) -> flux_control_files.FluxControlInfo | None:
    """The Flux Control LoRA serving a canny/depth unit on a family with control-model
    pipelines: the one `name`s, or one of the unit's type; None elsewhere."""
    if spec_for(query.model.family).control_model_pipelines is None:
        return None
    if not name and unit.type not in flux_control_files.TYPES:
        return None
    return flux_control_files.find(query.library, unit.type, name)


def _with_control_hint(exc: DreamwireError, family: str, kind: str) -> DreamwireError:
    """A missing canny/depth model on Flux: say that BFL's Control LoRA serves it too."""
    if spec_for(family).control_model_pipelines is None or kind not in flux_control_files.TYPES:
        return exc
    hint = f"; or a Flux Control LoRA (flux1-{kind}-dev-lora.safetensors) in models/Lora"
    return DreamwireError(exc.code, exc.message + hint, exc.job_id)


def _ip_encoder(query: UnitQuery, unit, info, where) -> ip_adapter_files.EncoderFile | None:
    """IP-Adapter units: the adapter fits the UNet's config and its CLIP encoder is there.
    What needs the loaded UNet module is checked when it has loaded (check_loaded)."""
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
    # A Style/Composition map with no block in this UNet fails here, before any step.
    ip_adapter_blocks.block_factors(unit.type, query.model.family, query.model.denoiser_config)
    library = query.library
    roots = getattr(library, "roots", []) if library is not None else []
    return ip_adapter_files.pick_encoder(info.ip_adapter, info.name, roots, unit.preprocessor)


def check_loaded(planned: Sequence[PlannedUnit], model) -> None:
    """What an IP-Adapter unit needs of the loaded UNet module, checked once it has loaded
    and before anything attaches (its width is checked at plan time, check_compatible).
    These two stay at load time: `encoder_hid_proj` is module state (a projection already
    in place), which no config file records; and the cross-attention layer count is what
    ip_adapter_files.mismatch counts in the module's attention processors, the exact
    places the adapter's weights go. That count follows from the config too (attention
    blocks x transformer_layers_per_block), but no test yet holds the two equal for every
    layout, so it is counted where it is sure."""
    unet = model.components["unet"]
    for r in planned:
        where = f"control unit {r.index} ({r.unit.type})"
        problems = ip_adapter_files.mismatch(r.info.ip_adapter, unet)
        if problems:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"{where}: IP-Adapter {r.info.name} does not fit {model.name} "
                f"({'; '.join(problems)})",
            )
        if unet.encoder_hid_proj is not None:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{where}: {model.name}'s UNet already projects its encoder states; "
                "IP-Adapters are not supported on it",
            )


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


def offers(query: UnitQuery, kind: str) -> bool:
    """Whether a `kind` unit naming no model would find a file for the query's model."""
    available = library_entries(query.library, "controlnet")
    unet_config = dict(query.model.denoiser_config)
    try:
        pick(kind, available, unet_config, query.model, f"{kind} unit")
    except DreamwireError:
        return False
    return True


def hires_pass(ctx, mode: str) -> bool:
    """Whether this pass is Hires.fix's second (units' soft injection follows A1111 there)."""
    job = ctx.job
    return job.hires is not None and job.mode is JobMode.TXT2IMG and mode == JobMode.IMG2IMG


def library_roots(library: ModelLibrary | None) -> tuple[Path, ...]:
    """The library's model roots, where preprocessors look for annotator weights (none for
    a context built without a library)."""
    return tuple(library.roots) if library is not None else ()


def pass_image(ctx, r: PlannedUnit):
    """The unit's control image at the pass size, on the pass's device and dtype."""
    roots = library_roots(ctx.library)
    return units.control_tensor(
        r.unit, ctx.job, ctx.width, ctx.height, r.info, ctx.inpaint_region, ctx.canvas, roots
    ).to(device=ctx.device.device, dtype=ctx.device.dtype)
