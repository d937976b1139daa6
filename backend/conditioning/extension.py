"""The engine extension: LoRA patches around a job, ControlNet pipelines for its passes.

before_job resolves and checks everything a job asks for (LoRA names and files, ControlNet
files against the base model's architecture, control-image channels) so that bad input
fails before any denoising; pipeline_for builds the ControlNet stack for each pass at that
pass's size (Hires.fix passes get the control images at the larger size); after_job puts
back the exact original weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.families import spec_for
from dreamwire.backend.library import hashing
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import format_hashes
from dreamwire.shared.job import ControlUnit
from dreamwire.shared.model_names import strip_suffix

from . import (
    control_image,
    controlnet_files,
    ip_adapter,
    ip_adapter_blocks,
    ip_adapter_files,
    lora,
    on_canvas,
    t2i_adapter,
    union,
    unit_infotext,
    units,
)
from .adapter_stack import AdapterStack
from .embeddings import EmbeddingSet
from .observer import CONTROLNET, IP_ADAPTER, T2I_ADAPTER, NoObserver, StackObserver

log = logging.getLogger("dreamwire.conditioning")


def library_entries(library, kind: str) -> dict[str, Path]:
    """name -> path for one kind of the model library (LoRA, ControlNet, embedding)."""
    if library is None:
        return {}
    from dreamwire.backend.library import Kind

    return {e.name: Path(e.path) for e in library.entries(Kind(kind))}


@dataclass
class ResolvedUnit:
    unit: ControlUnit
    info: controlnet_files.ControlNetInfo
    encoder: ip_adapter_files.EncoderFile | None = None  # the CLIP encoder of an IP-Adapter


@dataclass
class JobState:
    """What the extension holds for one job (JobContext.state_of): the units it resolved and
    everything it attached, so after_job can undo exactly that."""

    controls: list[ResolvedUnit] = field(default_factory=list)
    lora_patch: Any = None  # lora.apply's patch: restore() puts the weights back
    control_stack: Any = None  # the current pass's ControlNet stack
    adapter_stack: AdapterStack | None = None
    ip_stack: ip_adapter.IPAdapterStack | None = None


# Step hooks this extension registers, by name (JobContext.step_hooks).
CONTROLNET_HOOK = "conditioning.controlnet"
ADAPTER_HOOK = "conditioning.t2i_adapter"
IP_ADAPTER_HOOK = "conditioning.ip_adapter"


class ConditioningExtension:
    """Registered through dreamwire.backend.conditioning.engine_extensions()."""

    def __init__(self, cache_size: int = 2, observer: StackObserver | None = None):
        self._nets: BoundedCache[Any] = BoundedCache(cache_size)
        self.observer: StackObserver = observer or NoObserver()
        # IP-Adapter weights and CLIP encoders (two per unit: twice the room).
        self._ip_cache: BoundedCache[Any] = BoundedCache(2 * cache_size)

    # -- LoRA --------------------------------------------------------------------------
    def _apply_loras(self, ctx) -> None:
        requests = ctx.plan.loras
        if not requests:
            return
        available = library_entries(ctx.library, "lora")
        parsed = []
        hashes: dict[str, str] = {}
        for r in requests:
            path = lora.resolve(r.name, available)
            parsed.append((lora.read_cached(path, r.name), r.unet, r.text))
            hashes[r.name] = _lora_hash(path)
        ctx.state_of(JobState).lora_patch = lora.apply(parsed, ctx.model.components, ctx.model.name)
        ctx.handled.add("loras")
        # A1111's Lora extension writes each network by the name the prompt gave it.
        ctx.infotext_extra["Lora hashes"] = format_hashes(hashes)

    # -- ControlNet --------------------------------------------------------------------
    def _resolve_controls(self, ctx) -> list[ResolvedUnit]:
        model = ctx.model
        unet_config = dict(model.components["unet"].config)
        available = library_entries(ctx.library, "controlnet")
        resolved = []
        for i, unit in enumerate(ctx.controls):
            where = f"control unit {i} ({unit.type})"
            units.check_image(unit, where)
            if unit.model:
                path = available.get(unit.model) or available.get(strip_suffix(unit.model))
                if path is None:
                    raise DreamwireError(
                        ErrorCode.CONTROLNET_NOT_FOUND,
                        f"{where}: ControlNet {unit.model!r} not found; available: "
                        f"{', '.join(sorted(available)) or 'none'}",
                    )
                info = inspect_cached(path, unit.model)
            else:
                info = self._pick(unit.type, available, unet_config, model, where)
            controlnet_files.check_supported(info)
            controlnet_files.check_compatible(info, unet_config, model.name, model.family)
            if union.is_union(info):
                union.control_mode(unit.type, info, where)  # a mode the model has, or fail now
            encoder = self._ip_encoder(ctx, unit, info, where)
            if info.type is not None and info.type != ip_adapter_blocks.file_type(unit.type):
                # Legitimate (e.g. a lineart model fed a scribble), so not an error; record it.
                log.info("%s: using %s, a %s ControlNet", where, info.name, info.type)
            resolved.append(ResolvedUnit(unit, info, encoder))
        return resolved

    def _ip_encoder(self, ctx, unit, info, where) -> ip_adapter_files.EncoderFile | None:
        """IP-Adapter units: the adapter fits the UNet and its CLIP encoder is there."""
        if (unit.type in ip_adapter_blocks.TYPES) != info.is_ip_adapter:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"{where}: {info.name} is an IP-Adapter; use a unit of type "
                f"{', '.join(ip_adapter_blocks.TYPES)}"
                if info.is_ip_adapter
                else f"{where}: {info.name} is not an IP-Adapter (an ip-adapter unit needs an "
                "ip-adapter_*.safetensors file)",
            )
        if not info.is_ip_adapter:
            return None
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

    def _pick(self, kind, available, unet_config, model, where) -> controlnet_files.ControlNetInfo:
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
            unions = self._unions(kind, available, unet_config, model, where)
            if unions:
                return unions[0]
            raise DreamwireError(
                ErrorCode.CONTROLNET_NOT_FOUND,
                f"{where}: no {kind} ControlNet for {model.name} in the ControlNet folders "
                f"(have: {', '.join(sorted(available)) or 'none'})",
            )

        # Prefer ControlNets to T2I-Adapters, and ControlNet 1.1 files (control_v11...),
        # when several fit; of IP-Adapters the plain one (Krita AI Diffusion's Reference
        # default) before plus.
        def rank(c):
            plus = bool(c.is_ip_adapter and getattr(c.ip_adapter, "plus", False))
            return (c.is_adapter, plus, not c.name.startswith("control_v11"), c.name)

        candidates.sort(key=rank)
        return candidates[0]

    def offers_control(self, ctx, kind: str) -> bool:
        """Whether a `kind` unit naming no model would find one for ctx's model (SD upscale
        adds its tile unit only then)."""
        available = library_entries(ctx.library, "controlnet")
        unet_config = dict(ctx.model.components["unet"].config)
        try:
            self._pick(kind, available, unet_config, ctx.model, f"{kind} unit")
        except DreamwireError:
            return False
        return True

    def capabilities(self, library) -> dict:
        """The welcome's control_types / control_missing (capabilities.py)."""
        from .capabilities import control_capabilities

        return control_capabilities(library, self._pick)

    def _unions(self, kind, available, unet_config, model, where) -> list:
        """No ControlNet of this type: a Union model that has the type's mode will do, as
        Krita AI Diffusion falls back to one for SDXL (ProMax first: it has every mode)."""
        found = []
        for name, path in sorted(available.items()):
            try:  # headers only, cached
                info = inspect_cached(path, name)
                if not union.is_union(info):
                    continue
                controlnet_files.check_supported(info)
                controlnet_files.check_compatible(info, unet_config, model.name, model.family)
                union.control_mode(kind, info, where)
            except DreamwireError:
                continue
            found.append(info)
        found.sort(key=lambda c: (not c.detail.get("promax", False), c.name))
        return found

    def _net(self, info, model, device):
        key = (str(info.path), _mtime(info.path), str(device.device), str(device.dtype), model.arch)
        unet_config = dict(model.components["unet"].config)
        return self._nets.get(
            key, lambda: controlnet_files.load(info, unet_config, device.dtype, device.device)
        )[0]

    # -- EngineExtension ---------------------------------------------------------------
    def before_job(self, ctx) -> None:
        # Textual-inversion names are looked up by backend/text_encoding.py through this set
        # (loaded lazily: only embeddings a prompt names are read).
        ctx.embeddings = EmbeddingSet(library_entries(ctx.library, "embedding"))
        if ctx.controls:
            state = ctx.state_of(JobState)
            state.controls = self._resolve_controls(ctx)
            ctx.handled.add("controls")
            # The A1111 ControlNet extension's "ControlNet N" entries, with the models picked.
            ctx.infotext_extra.update(unit_infotext.fields(state.controls, ctx.job))
        self._apply_loras(ctx)

    def pipeline_for(self, ctx, mode: str):
        from dreamwire.backend.engine.hooks import PassPlan

        resolved: list[ResolvedUnit] = ctx.state_of(JobState).controls
        self._attach_ip_adapters(ctx, [r for r in resolved if r.info.is_ip_adapter])
        self._attach_adapters(ctx, [r for r in resolved if r.info.is_adapter], mode)
        resolved = [r for r in resolved if not (r.info.is_adapter or r.info.is_ip_adapter)]
        if not resolved:
            return None  # adapters alone run in the plain pipeline, through the UNet hook
        job, model = ctx.job, ctx.model
        hires_pass = job.hires is not None and job.mode == "txt2img" and mode == "img2img"
        nets, stack_units, images = [], [], []
        for r in resolved:
            nets.append(self._net(r.info, model, ctx.device))
            stack_units.append(units.stack_unit(r.unit, r.info, hires_pass))
            images.append(
                units.control_tensor(
                    r.unit,
                    job,
                    ctx.width,
                    ctx.height,
                    r.info,
                    ctx.inpaint_region,
                    ctx.canvas,
                ).to(device=ctx.device.device, dtype=ctx.device.dtype)
            )
        # Units on one ControlNet Union model run as one union call (union.py).
        nets, stack_units, images = union.fold(
            [r.info for r in resolved], [r.unit.type for r in resolved], nets, stack_units, images
        )
        stack = union.ControlStack(
            nets, stack_units, cfg=job.cfg > 1.0, on_ran=partial(self.observer.ran, CONTROLNET)
        )
        ctx.state_of(JobState).control_stack = stack
        self.observer.attached(CONTROLNET, stack)

        def step_hook(ctx_, pipe, step, total, tensors):
            stack.set_step(step, total)
            return None

        ctx.step_hooks.register(CONTROLNET_HOOK, step_hook)
        n = len(nets)
        key = "image" if mode == "txt2img" else "control_image"
        call = {
            key: images,
            "controlnet_conditioning_scale": [1.0] * n,
            "control_guidance_start": [0.0] * n,
            "control_guidance_end": [1.0] * n,
        }
        cls = spec_for(model.family).pipeline_class(mode, controlnet=True)
        return PassPlan(cls, components={"controlnet": stack}, call_kwargs=call)

    def _attach_adapters(self, ctx, resolved: list[ResolvedUnit], mode: str) -> None:
        """T2I-Adapter units for this pass: features from the control images at the pass
        size, added inside the UNet's down blocks by a hook (adapter_stack.py)."""
        state = ctx.state_of(JobState)
        if state.adapter_stack is not None:
            state.adapter_stack.detach()
            state.adapter_stack = None
        ctx.step_hooks.remove(ADAPTER_HOOK)
        if not resolved:
            return
        job, model = ctx.job, ctx.model
        hires_pass = job.hires is not None and job.mode == "txt2img" and mode == "img2img"
        for r in resolved:
            t2i_adapter.check_size(r.info.adapter.config, ctx.width, ctx.height, r.info.name)
        adapters = [self._net(r.info, model, ctx.device) for r in resolved]
        stack_units = [units.stack_unit(r.unit, r.info, hires_pass) for r in resolved]
        images = [
            units.control_tensor(
                r.unit,
                job,
                ctx.width,
                ctx.height,
                r.info,
                ctx.inpaint_region,
                ctx.canvas,
            ).to(device=ctx.device.device, dtype=ctx.device.dtype)
            for r in resolved
        ]
        stack = AdapterStack(
            adapters,
            stack_units,
            images,
            cfg=job.cfg > 1.0,
            on_ran=partial(self.observer.ran, T2I_ADAPTER),
        )
        stack.attach(model.components["unet"])
        state.adapter_stack = stack
        self.observer.attached(T2I_ADAPTER, stack)

        def step_hook(ctx_, pipe, step, total, tensors):
            stack.set_step(step, total)
            return None

        ctx.step_hooks.register(ADAPTER_HOOK, step_hook)

    def _ip_cached(self, key: tuple, make):
        return self._ip_cache.get(key, make)[0]

    def _attach_ip_adapters(self, ctx, resolved: list[ResolvedUnit]) -> None:
        """IP-Adapter units: loaded into the UNet once for the whole job (every pass reads
        the same reference), the window followed per pass through the step hook."""
        ctx.step_hooks.remove(IP_ADAPTER_HOOK)
        if not resolved:
            return
        job_state = ctx.state_of(JobState)
        stack = job_state.ip_stack
        if stack is None:
            dev = ctx.device
            ip_units = []
            for i, r in enumerate(resolved):
                where = f"IP-Adapter unit {i} ({r.info.name})"
                path, enc = r.info.path, r.encoder
                state = self._ip_cached(
                    ("ip", str(path), _mtime(path)),
                    lambda p=path, n=r.info.name: ip_adapter_files.load_adapter(p, n),
                )
                encoder = self._ip_cached(
                    ("clip", str(enc.path), _mtime(enc.path), str(dev.device), str(dev.dtype)),
                    lambda e=enc: ip_adapter_files.load_encoder(e, dev.dtype, dev.device),
                )
                if r.unit.image is None:  # A1111: the img2img picture is the reference
                    rgb, _ = on_canvas.picture(ctx.canvas, "ip-adapter", where)
                else:
                    rgb, _ = control_image.split_channels(r.unit.image, f"{where} image")
                stack_unit = units.stack_unit(r.unit, r.info, hires_pass=False)
                unet_config = ctx.model.components["unet"].config
                blocks = ip_adapter_blocks.block_factors(r.unit.type, ctx.model.family, unet_config)
                ip_units.append(
                    ip_adapter.IPUnit(
                        state, r.info.ip_adapter.plus, encoder, rgb, stack_unit, blocks
                    )
                )
            stack = ip_adapter.IPAdapterStack(
                ip_units, cfg=ctx.job.cfg > 1.0, on_ran=partial(self.observer.ran, IP_ADAPTER)
            )
            job_state.ip_stack = stack
            self.observer.attached(IP_ADAPTER, stack)
            stack.attach(ctx.model.components["unet"])
        stack.set_step(0, 0)  # a new pass starts at its step 0

        def step_hook(ctx_, pipe, step, total, tensors):
            stack.set_step(step, total)
            return None

        ctx.step_hooks.register(IP_ADAPTER_HOOK, step_hook)

    def after_job(self, ctx) -> None:
        state = ctx.extension_state.pop(JobState, None)
        if state is None:
            return
        if state.ip_stack is not None:
            state.ip_stack.detach()  # processors, projection and config as they were
        if state.adapter_stack is not None:
            state.adapter_stack.detach()  # the cached UNet must never keep a job's hook
        if state.lora_patch is not None:
            state.lora_patch.restore()


def _lora_hash(path: Path) -> str:
    """A1111's LoRA short hash: the addnet hash (tensor data only) of a .safetensors
    file, the file's sha256 otherwise; 12 hex digits."""
    if path.suffix.lower() == ".safetensors":
        return hashing.addnet_hash(path)
    return hashing.sha256(path)[:12]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# What each ControlNet file is (read from its header): small, but one per file ever seen.
_INFO: BoundedCache[controlnet_files.ControlNetInfo] = BoundedCache(512)


def inspect_cached(path: Path, name: str) -> controlnet_files.ControlNetInfo:
    return _INFO.get((str(path), _mtime(path)), lambda: controlnet_files.inspect(path, name))[0]
