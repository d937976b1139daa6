"""Which control unit types this backend can run, per model family, for the welcome.

Hosts offer only what the backend can serve for the chosen model (as Krita AI Diffusion
greys out control layers whose model is missing). A type is served for a family when a
unit of that type naming no model would find a file for that family's UNet: a ControlNet
or T2I-Adapter of the type, a ControlNet Union model with the type's mode, or (ip-adapter,
ip-adapter-style, ip-adapter-composition: the same files) an IP-Adapter together with the
CLIP vision encoder it reads. The answer comes from the
same picking code the jobs use, over file headers only (cached by path and mtime), and is
cached for the library's state, so a welcome costs a directory listing once computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from dreamwire.backend.families import Reference, spec_for
from dreamwire.backend.library.denoiser_config import denoiser_config
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import CONTROL_TYPES

from . import (
    controlnet_files,
    flux_control_files,
    ip_adapter_blocks,
    ip_adapter_files,
    redux_files,
)
from .files import library_entries, mtime
from .ip_adapter_files import IPAdapterInfo

# Files an artist would add, as A1111's ControlNet extension / Krita AI Diffusion name them.
_SD15 = {
    "depth": "control_v11f1p_sd15_depth",
    "normalbae": "control_v11p_sd15_normalbae",
    "openpose": "control_v11p_sd15_openpose",
    "seg": "control_v11p_sd15_seg",
    "canny": "control_v11p_sd15_canny",
    "mlsd": "control_v11p_sd15_mlsd",
    "softedge": "control_v11p_sd15_softedge",
    "scribble": "control_v11p_sd15_scribble",
    "lineart": "control_v11p_sd15_lineart",
    "lineart_anime": "control_v11p_sd15s2_lineart_anime",
    "shuffle": "control_v11e_sd15_shuffle",
    "tile": "control_v11f1e_sd15_tile",
    "inpaint": "control_v11p_sd15_inpaint",
    "ip2p": "control_v11e_sd15_ip2p",
    "color": "t2iadapter_color_sd14v1",
    "ip-adapter": "ip-adapter_sd15",
    "mediapipe_face": "control_v2p_sd15_mediapipe_face",  # CrucibleAI's
}
_SDXL_UNION = "controlnet-union-sdxl-1.0_promax"
EXAMPLES = {
    "sd1": _SD15,
    "sd2": {"mediapipe_face": "control_v2p_sd21_mediapipe_face"},
    "sdxl": {
        **{
            t: _SDXL_UNION
            for t in ("depth", "normalbae", "openpose", "seg", "canny", "mlsd", "softedge")
            + ("scribble", "lineart", "lineart_anime", "tile", "inpaint")
        },
        "ip-adapter": "ip-adapter_sdxl_vit-h",
    },
    # Shakker's Union-Pro 2.0 (no mode input) serves the edge, depth and pose types; tile
    # needs the first Union-Pro (mode 1).
    "flux": {
        **{
            t: "FLUX.1-dev-ControlNet-Union-Pro-2.0"
            for t in ("canny", "lineart", "lineart_anime", "mlsd", "softedge", "scribble")
            + ("depth", "openpose")
        },
        "tile": "FLUX.1-dev-ControlNet-Union-Pro",
    },
    # Alibaba PAI's Fun ControlNet Union (in ComfyUI's models/model_patches).
    "zimage": dict.fromkeys(
        ("canny", "softedge", "depth", "openpose", "mlsd"), "Z-Image-Turbo-Fun-Controlnet-Union-2.1"
    ),
    # InstantX's Union as Comfy-Org repackaged it (models/controlnet).
    "qwen-image": dict.fromkeys(
        ("canny", "softedge", "depth", "openpose"), "Qwen-Image-InstantX-ControlNet-Union"
    ),
}
# A denoiser config's entries that ControlNet compatibility depends on (UNet, transformer).
_SHAPE_KEYS = ("cross_attention_dim", "addition_embed_type", "block_out_channels")
_SHAPE_KEYS += ("num_attention_heads", "attention_head_dim", "joint_attention_dim")
_SHAPE_KEYS += ("dim", "n_heads", "n_layers")  # Z-Image's transformer

Pick = Callable[..., controlnet_files.AnyUnitFile]

_CACHE: dict[str, object] = {}


def control_capabilities(library, pick: Pick) -> dict[str, dict[str, dict[str, str]]]:
    """{"control_types": {family: {type: file(s) serving it}},
    "control_missing": {family: {type: why not, naming the file to add}}}
    for the families of the library's checkpoints. `pick` is unit_resolution.pick."""
    available = library_entries(library, "controlnet")
    roots = list(getattr(library, "roots", []) or [])
    encoders = ip_adapter_files.encoder_files(roots)
    configs = _family_configs(library)
    key = json.dumps(
        [
            sorted((str(p), mtime(p)) for p in available.values()),
            sorted(available),
            [(str(p), mtime(p)) for p in encoders],
            [(str(p), mtime(p)) for p in redux_files.style_model_files(library)],
            flux_control_files.state(library),
            {f: [json.dumps(c, sort_keys=True) for c in cs] for f, cs in sorted(configs.items())},
        ]
    )
    if _CACHE.get("key") == key:
        return _CACHE["value"]  # type: ignore[return-value]
    served: dict[str, dict[str, str]] = {}
    missing: dict[str, dict[str, str]] = {}
    for family, unet_configs in sorted(configs.items()):
        served[family], missing[family] = {}, {}
        for kind in CONTROL_TYPES:
            found, why = None, ""
            for unet_config in unet_configs:
                found, why = _serve(kind, family, unet_config, available, roots, pick)
                if found:
                    break
            if found:
                served[family][kind] = found
            else:
                missing[family][kind] = why
    _serve_redux(library, served, missing)
    _serve_control_models(library, served, missing)
    value = {"control_types": served, "control_missing": missing}
    _CACHE.update(key=key, value=value)
    return value


def _serve(kind, family, unet_config, available, roots, pick) -> tuple[str | None, str]:
    label = families.label(family)
    model = SimpleNamespace(name=f"{label} models", family=family)
    example = EXAMPLES.get(family, {}).get(ip_adapter_blocks.file_type(kind))
    hint = f" (e.g. {example}.safetensors)" if example else ""
    spec = spec_for(family)
    flag = "ip_adapter" if kind in ip_adapter_blocks.TYPES else "controlnet"
    if not getattr(spec.support, flag):
        return None, spec.refusal(flag).message
    if kind in ip_adapter_blocks.TYPES and spec.reference is not Reference.IP_ADAPTER:
        # Another kind runs the family's reference units (_serve_redux); it has no
        # Style/Composition maps.
        return None, f"{label} reference units have no {kind.removeprefix('ip-adapter-')} mode"
    if kind in ip_adapter_blocks.TYPES:
        return _serve_ip_adapter(label, unet_config, available, roots, model, hint)
    # Pickled ControlNets (.pth) have no header: reading one means unpickling the whole
    # file, so they are judged by name here (type and family), as A1111's list does.
    headers = {n: p for n, p in available.items() if not _pickled(p)}
    for name, path in sorted(available.items()):
        if (
            _pickled(path)
            and controlnet_files.type_from_name(name) == kind
            and controlnet_files.family_from_name(name) == label
        ):
            return name, ""
    try:
        info = pick(kind, headers, unet_config, model, f"{kind} unit")
    except DreamwireError:
        return None, (
            f"no {kind} ControlNet, T2I-Adapter or Union model for {label} in the ControlNet "
            f"folders{hint}"
        )
    return info.name, ""


def _serve_ip_adapter(label, unet_config, available, roots, model, hint):
    adapters = []
    for name, path in sorted(available.items()):
        if controlnet_files.type_from_name(name) != "ip-adapter":
            continue
        try:
            info = _inspect(path, name)
            controlnet_files.check_supported(info)
            controlnet_files.check_compatible(info, unet_config, model.name, model.family)
        except DreamwireError:
            continue
        if isinstance(info, IPAdapterInfo) and info.ip_adapter is not None:
            adapters.append(info)
    if not adapters:
        return None, f"no IP-Adapter for {label} in the ControlNet or ipadapter folders{hint}"
    adapters.sort(key=lambda i: (i.ip_adapter.plus, i.name))  # the order a job picks in
    why = ""
    for info in adapters:
        try:
            enc = ip_adapter_files.pick_encoder(info.ip_adapter, info.name, roots)
        except DreamwireError as exc:
            why = why or exc.message
            continue
        return f"{info.name} + {enc.name}", ""
    return None, why


def _serve_redux(library, served, missing) -> None:
    """Families whose reference units run Flux Redux (the family spec's `reference`), for
    the library's checkpoints of them: the reference type, served by Redux + SigLIP."""
    from dreamwire import catalog
    from dreamwire.backend.families import Reference, spec_for

    redux = {
        family
        for e in library.entries("checkpoint")
        if e.arch
        and (family := catalog.family_of(e.arch))
        and spec_for(family).reference is Reference.REDUX
    }
    if not redux:
        return
    found, why = redux_files.served(library)
    for family in sorted(redux):
        kind = ip_adapter_blocks.REFERENCE
        if found:
            served.setdefault(family, {})[kind] = found
            missing.get(family, {}).pop(kind, None)
        else:
            missing.setdefault(family, {})[kind] = why


def _serve_control_models(library, served, missing) -> None:
    """Canny/depth on a family with control-model pipelines (Flux): a Control LoRA in the
    LoRA folders serves the type when no ControlNet does (flux_control_files.py)."""
    for family in served:
        if spec_for(family).control_model_pipelines is None:
            continue
        for kind in flux_control_files.TYPES:
            if kind in served[family]:
                continue
            found = flux_control_files.find(library, kind)
            if found is not None:
                served[family][kind] = found.name
                missing[family].pop(kind, None)
            elif kind in missing[family] and spec_for(family).support.controlnet:
                missing[family][kind] += (
                    f"; or a Flux Control LoRA (flux1-{kind}-dev-lora.safetensors) in models/Lora"
                )


def _family_configs(library) -> dict[str, list[dict]]:
    """Each family's distinct UNet shapes (what ControlNet compatibility depends on), from
    the catalog config of each checkpoint's architecture or a diffusers folder's own."""
    from dreamwire import catalog

    out: dict[str, list[dict]] = {}
    for entry in library.entries("checkpoint"):
        denoiser = spec_for(catalog.family_of(entry.arch)).denoiser  # "unet" or "transformer"
        cfg = denoiser_config(entry, denoiser)
        if cfg is None:
            continue
        slim = {k: cfg[k] for k in _SHAPE_KEYS if k in cfg}
        bucket = out.setdefault(catalog.family_of(entry.arch), [])
        if slim not in bucket:
            bucket.append(slim)
    return out


def _inspect(path: Path, name: str):
    from .unit_resolution import inspect_cached

    return inspect_cached(path, name)


def _pickled(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin")
