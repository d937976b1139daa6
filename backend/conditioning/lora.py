"""LoRA (kohya and diffusers/PEFT), LoCon and LoHa applied the way A1111 applies them.

A1111's built-in Lora extension adds, to every targeted weight W,

    W' = W + (up @ down) * multiplier * alpha / rank

(LoHa: ((w1a @ w1b) * (w2a @ w2b)) in place of up @ down), with the text-encoder multiplier
for text-encoder modules and the UNet multiplier for UNet modules. Here that delta is added
to the loaded model's weights in place, and the exact original tensors are kept so that
`LoraPatch.restore()` puts every weight back bit for bit: the next job without the LoRA gives
exactly the base model's output.

Keys understood:
  kohya      lora_unet_<module>, lora_te_<module> (SD1/SD2), lora_te1_/lora_te2_ (SDXL), with
             .lora_down.weight / .lora_up.weight / .alpha; UNet modules named the diffusers way
             (down_blocks_0_attentions_0_...) or the original way (input_blocks_4_1_...)
  LoCon      the same keys on conv layers (3x3 down, 1x1 up)
  LoHa       .hada_w1_a/.hada_w1_b/.hada_w2_a/.hada_w2_b (+ .alpha)
  diffusers  unet.<module>.lora_A.weight / lora_B.weight (PEFT), text_encoder[_2].<module>...,
             and the older .lora.down.weight / .lora.up.weight and processor.to_q_lora.* forms
  Flux.1     kohya, ComfyUI, ai-toolkit/diffusers and BFL/XLabs names (lora_flux_keys.py)
  Flux.2     ai-toolkit/ComfyUI, kohya/musubi and diffusers names for Klein
             (lora_flux2_keys.py)
  SD3.5      kohya, ComfyUI and diffusers names (lora_sd3_keys.py)
  Qwen-Image diffusers/PEFT (ai-toolkit), kohya and ComfyUI names (lora_qwen_keys.py)
  Z-Image    ai-toolkit/diffusers, kohya/musubi, ComfyUI and dot-joined names
             (lora_zimage_keys.py)
Refused with a clear message: LoKr, (IA)^3, OFT, GLoRA, Tucker (lora_mid/hada_t), full-diff
LyCORIS files, and legacy hypernetworks (use a LoRA instead).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dreamwire.backend.families import LoraLineage, lora_lineage, spec_for, spec_of_components
from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import (
    files,
    lora_flux2_keys,
    lora_flux_keys,
    lora_qwen_keys,
    lora_sd3_keys,
    lora_zimage_keys,
)
from .ldm_names import ldm_aliases
from .lora_flux_keys import Fit, KeyRef

log = logging.getLogger("dreamwire.conditioning")

# part name -> pipeline component ("pte": diffusers/PEFT files, which name the component)
PARTS = {
    "unet": "unet",
    "transformer": "transformer",  # Flux
    "te": "text_encoder",
    "te1": "text_encoder",
    "te2": "text_encoder_2",
    "te3": "text_encoder_2",  # Flux's T5 (kohya lora_te3_)
    "pte1": "text_encoder",
    "pte2": "text_encoder_2",
    "sd3_t5": "text_encoder_3",  # SD3's T5 (kohya lora_te3_, diffusers text_encoder_3.)
}
# Parts the UNet/transformer multiplier applies to; the text-encoder multiplier takes the rest.
DENOISER_PARTS = ("unet", "transformer")
_REFUSED = {
    "lokr_w1": "LyCORIS LoKr",
    "lokr_w1_a": "LyCORIS LoKr",
    "lokr_w2": "LyCORIS LoKr",
    "hada_t1": "LyCORIS LoHa with Tucker decomposition",
    "lora_mid.weight": "LyCORIS LoCon with Tucker decomposition (lora_mid)",
    "on_input": "LyCORIS (IA)^3",
    "oft_diag": "LyCORIS OFT",
    "oft_blocks": "LyCORIS OFT",
    "a1.weight": "LyCORIS GLoRA",
    "diff": "LyCORIS full-weight diff",
    # Applied as plain LoRA a DoRA file gives other pictures: refused rather than wrong.
    "dora_scale": "DoRA (weight-decomposed LoRA)",
    # BFL's depth/canny Control LoRAs also replace norms and widen img_in for the control
    # image: a control model, not a style LoRA.
    "query_norm.scale": "Flux Control LoRA (a depth/canny control model: use it through a "
    "canny or depth control unit)",
}


@dataclass
class LoraModule:
    part: str  # a key of PARTS
    name: str  # module name as the file spells it, "_"-joined, without the part prefix
    kind: str  # "lora" | "loha"
    tensors: dict[str, torch.Tensor]
    alpha: float | None = None
    # Where it lands: `name` itself unless the file's layer is fused or reordered in the
    # loaded model (Flux, lora_flux_keys.py).
    fit: Fit = Fit()

    @property
    def rank(self) -> int:
        t = self.tensors["down"] if self.kind == "lora" else self.tensors["w1b"]
        return int(t.shape[0])

    @property
    def scale(self) -> float:
        # A1111 (network.py calc_scale): alpha / dim when both are known, else 1.
        return self.alpha / self.rank if self.alpha is not None else 1.0

    def updown(self) -> torch.Tensor:
        """up @ down (or the LoHa product) in float32, shaped like the target weight's matrix."""
        t = {k: v.float() for k, v in self.tensors.items()}
        if self.kind == "loha":
            return (t["w1a"] @ t["w1b"]) * (t["w2a"] @ t["w2b"])
        up, down = t["up"], t["down"]
        out = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
        if down.ndim == 4:
            return out.reshape(up.shape[0], down.shape[1], *down.shape[2:])
        return out


@dataclass
class LoraFile:
    name: str
    path: Path
    modules: list[LoraModule] = field(default_factory=list)
    flux: bool = False  # named for Flux's layers (lora_flux_keys.is_flux)
    sd3: bool = False  # named for SD3's layers (lora_sd3_keys.is_sd3)
    qwen: bool = False  # named for Qwen-Image's layers (lora_qwen_keys.is_qwen)
    zimage: bool = False  # named for Z-Image's layers (lora_zimage_keys.is_zimage)
    flux2: bool = False  # named and sized for Flux.2's layers (lora_flux2_keys.is_flux2)

    @property
    def family(self) -> str | None:
        """The LoRA lineage key ("sd", "sdxl", "flux", "flux2", "sd3", "qwen-image",
        "zimage") where the key names tell: Flux's, Flux.2's, SD3's, Qwen-Image's and
        Z-Image's layer names (Flux.2's also by its MLP widths); kohya writes te1/te2 without
        them only for SDXL."""
        if self.qwen:
            return "qwen-image"
        if self.zimage:
            return "zimage"
        if self.flux2:
            return "flux2"
        if self.flux:
            return "flux"
        if self.sd3:
            return "sd3"
        parts = {m.part for m in self.modules}
        if parts & {"te1", "te2"}:
            return "sdxl"
        if "te" in parts:
            return "sd"
        return None


# --- reading ------------------------------------------------------------------------


def _refuse_kind(path: Path, keys: list[str]) -> None:
    for key in keys:
        for marker, label in _REFUSED.items():
            if key.endswith("." + marker):
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"{path.name} is a {label} file, which Dreamwire does not apply; "
                    "LoRA, LoCon and LoHa files are supported",
                )


def _is_hypernetwork(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "layer_structure" in data
        and any(isinstance(k, int) for k in data)
    )


def _refuse_hypernetwork(path: Path) -> DreamwireError:
    return DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        f"{path.name} is a legacy A1111 hypernetwork; Dreamwire does not run hypernetworks. "
        "Use a LoRA instead (most hypernetwork styles have LoRA versions, and LoRA does the "
        "same job better)",
    )


_PEFT = re.compile(
    r"^(unet|text_encoder|text_encoder_2)\.(.+?)"
    r"(?:\.processor\.(to_q|to_k|to_v|to_out)_lora|\.lora_linear_layer|\.lora)?"
    r"\.(lora_A|lora_B|down|up)(?:\.default)?\.weight$"
)
_KOHYA = re.compile(
    r"^lora_(unet|te1|te2|te)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha|hada_w[12]_[ab])$"
)
_KOHYA_SLOTS = {
    "lora_down.weight": "down",
    "lora_up.weight": "up",
    "alpha": "alpha",
    "hada_w1_a": "w1a",
    "hada_w1_b": "w1b",
    "hada_w2_a": "w2a",
    "hada_w2_b": "w2b",
}
_PEFT_PARTS = {"unet": "unet", "text_encoder": "pte1", "text_encoder_2": "pte2"}


def _parse_key(key: str) -> KeyRef | None:
    """The module and slot of an SD-era key (kohya, LyCORIS, diffusers/PEFT)."""
    if m := _KOHYA.match(key):
        return KeyRef(m[1], m[2], _KOHYA_SLOTS[m[3]])
    if m := _PEFT.match(key):
        # processor.to_out_lora targets the attention's to_out.0 Linear
        module = m[2] + ({"to_out": ".to_out.0"}.get(m[3], f".{m[3]}") if m[3] else "")
        slot = "down" if m[4] in ("lora_A", "down") else "up"
        return KeyRef(_PEFT_PARTS[m[1]], module.replace(".", "_"), slot)
    if key.endswith(".alpha") and (m := _PEFT.match(key[: -len(".alpha")] + ".lora_A.weight")):
        return KeyRef(_PEFT_PARTS[m[1]], m[2].replace(".", "_"), "alpha")
    return None


def read(path: Path, name: str | None = None) -> LoraFile:
    """Parse a LoRA file into modules; raises DreamwireError for anything it cannot apply."""
    data = files.load_tensors(path, "LoRA")
    if _is_hypernetwork(data):
        raise _refuse_hypernetwork(path)
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"{path.name} does not hold a LoRA's tensors"
        )
    return from_tensors(data, path, name)


def from_tensors(data: dict[str, torch.Tensor], path: Path, name: str | None = None) -> LoraFile:
    """A LoRA file's tensors parsed into modules (read() after loading; a Flux Control
    LoRA's pairs once its norms are taken out: flux_control_files.py)."""
    keys = list(data)
    _refuse_kind(path, keys)
    qwen = lora_qwen_keys.is_qwen(keys)
    # Z-Image before SD3: its diffusers names (`transformer.layers...`) would pass for SD3's.
    zimage = not qwen and lora_zimage_keys.is_zimage(keys)
    # Flux.2 before SD3 (diffusers' Flux.2 names without single blocks would pass for SD3's)
    # and Flux.1 (whose BFL names Flux.2 shares).
    flux2 = not qwen and not zimage and lora_flux2_keys.is_flux2(data)
    earlier = qwen or zimage or flux2
    sd3 = not earlier and lora_sd3_keys.is_sd3(keys)
    flux = not earlier and not sd3 and lora_flux_keys.is_flux(keys)
    grouped: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    alphas: dict[tuple[str, str], float] = {}
    refs: dict[tuple[str, str], KeyRef] = {}
    ignored = []
    for key, value in data.items():
        if qwen:
            ref = lora_qwen_keys.parse(key)
        else:
            ref = (
                (zimage and lora_zimage_keys.parse(key))
                or (flux2 and lora_flux2_keys.parse(key))
                or (sd3 and lora_sd3_keys.parse(key))
                or (flux and lora_flux_keys.parse(key))
                or _parse_key(key)
            )
        if ref is None:
            ignored.append(key)
            continue
        refs[(ref.part, ref.module)] = ref
        if ref.slot == "alpha":
            alphas[(ref.part, ref.module)] = float(value)
        else:
            grouped.setdefault((ref.part, ref.module), {})[ref.slot] = value
    if not grouped:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{path.name} has no LoRA weights Dreamwire recognises (first keys: {keys[:3]})",
        )
    if ignored:
        # As Forge ("lora key not loaded"): the rest of the file still applies.
        log.warning("LoRA %s: %d keys not applied, e.g. %s", path.name, len(ignored), ignored[:3])
    modules = []
    for (part, module), tensors in grouped.items():
        if {"down", "up"} <= set(tensors):
            kind = "lora"
        elif {"w1a", "w1b", "w2a", "w2b"} <= set(tensors):
            kind = "loha"
        else:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"{path.name}: {part} module {module} is incomplete"
            )
        fit = refs[(part, module)].fit
        modules.append(LoraModule(part, module, kind, tensors, alphas.get((part, module)), fit))
    return LoraFile(name or path.stem, path, modules, flux, sd3, qwen, zimage, flux2)


# --- targets ------------------------------------------------------------------------


def _underscored(name: str) -> str:
    return name.replace(".", "_")


def module_table(component: torch.nn.Module, part: str, unet_config: dict | None = None) -> dict:
    """Every name a LoRA file may use for a Linear/Conv module of this component."""
    table: dict[str, torch.nn.Module] = {}
    names = []
    for name, module in component.named_modules():
        if not isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            continue
        names.append(name)
        table[_underscored(name)] = module
        if part == "te":
            # transformers 5 dropped the `text_model.` level of CLIPTextModel; files keep it.
            if name.startswith("text_model."):
                table[_underscored(name.removeprefix("text_model."))] = module
            else:
                table["text_model_" + _underscored(name)] = module
    if part == "unet" and unet_config is not None:  # SD UNets: original-layout names too
        by_name = dict(component.named_modules())
        for ldm, diffusers in ldm_aliases(names, unet_config).items():
            table.setdefault(_underscored(ldm), by_name[diffusers])
    return table


@dataclass
class LoraPatch:
    """Weights changed in place; restore() puts back the exact originals."""

    originals: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)

    def restore(self) -> None:
        with torch.no_grad():
            for param, original in self.originals.values():
                param.copy_(original)
        self.originals.clear()
        self.applied.clear()


def _check_family(lora: LoraFile, model: LoraLineage, model_name: str) -> None:
    family = lora.family
    if family is not None and family != model.key:
        made_for = lora_lineage(family).label
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"LoRA {lora.name} was made for {made_for} models and cannot be used with "
            f"{model_name} ({model.label})",
        )


def _table_kind(component_name: str) -> str:
    """module_table's part: text encoders get CLIP's naming aliases, UNets the ldm ones."""
    return "te" if component_name.startswith("text_encoder") else component_name


def apply(
    loras: list[tuple[LoraFile, float, float]],
    components: dict[str, Any],
    model_name: str = "the model",
    family: str | None = None,
) -> LoraPatch:
    """Add each (file, unet multiplier, te multiplier) to the components' weights.

    `family` is the model's family key where the caller knows it: components alone do not
    tell families with the same parts apart (Qwen-Image, Z-Image, Flux.2 Klein).
    On any error nothing stays patched.
    """
    patch = LoraPatch()
    tables: dict[str, dict] = {}
    unet = components.get("unet")
    unet_config = dict(unet.config) if unet is not None and hasattr(unet, "config") else None
    lineage = (spec_for(family) if family else spec_of_components(components)).lora
    try:
        for lora, w_unet, w_te in loras:
            _check_family(lora, lineage, model_name)
            matched = 0
            misses = []
            for mod in lora.modules:
                comp_name = PARTS[mod.part]
                comp = components.get(comp_name)
                if comp is None:
                    misses.append(f"{mod.part}:{mod.name}")
                    continue
                if comp_name not in tables:
                    tables[comp_name] = module_table(comp, _table_kind(comp_name), unet_config)
                targets = [tables[comp_name].get(n) for n in mod.fit.targets or (mod.name,)]
                if None in targets:
                    misses.append(f"{mod.part}:{mod.name}")
                    continue
                if mod.fit.model_input and _other_input_width(mod, targets[0]):
                    log.warning(
                        "LoRA %s: %s is for another input width than %s's; left out",
                        lora.name,
                        mod.name,
                        model_name,
                    )
                    continue
                multiplier = w_unet if mod.part in DENOISER_PARTS else w_te
                _add(patch, targets, mod, multiplier, lora, model_name)
                matched += 1
            if matched == 0:
                raise DreamwireError(
                    ErrorCode.MODEL_MISMATCH,
                    f"LoRA {lora.name} matches no layer of {model_name}: it was made for another "
                    f"model family (e.g. {misses[0] if misses else '?'})",
                )
            patch.applied.append(lora.name)
    except BaseException:
        patch.restore()
        raise
    return patch


def _other_input_width(mod: LoraModule, target: torch.nn.Module) -> bool:
    down = mod.tensors["down"] if mod.kind == "lora" else mod.tensors["w1b"]
    return down.shape[1] != target.weight.shape[1]


def _split_rows(
    updown: torch.Tensor, targets: list[torch.nn.Module], mod: LoraModule, lora, model
) -> list[torch.Tensor]:
    """A fused layer's delta, row blocks in the targets' order (one target: unchanged)."""
    if mod.fit.swap_halves:
        updown = torch.cat(updown.chunk(2, dim=0)[::-1])
    if len(targets) == 1:
        return [updown]
    rows = [t.weight.shape[0] for t in targets]
    if updown.shape[0] != sum(rows):
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"LoRA {lora.name}: layer {mod.name} has {updown.shape[0]} output rows but "
            f"{model} has {sum(rows)}; the LoRA is for another model",
        )
    return list(updown.split(rows, dim=0))


def _add(
    patch: LoraPatch,
    targets: list[torch.nn.Module],
    mod: LoraModule,
    multiplier: float,
    lora,
    model,
) -> None:
    pieces = _split_rows(mod.updown(), targets, mod, lora, model)
    for target, updown in zip(targets, pieces, strict=True):
        weight = target.weight
        if updown.numel() != weight.numel():
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"LoRA {lora.name}: layer {mod.name} has shape {tuple(updown.shape)} but "
                f"{model} has {tuple(weight.shape)}; the LoRA is for another model family",
            )
        updown = updown.reshape(weight.shape)
        with torch.no_grad():
            if id(weight) not in patch.originals:
                patch.originals[id(weight)] = (weight, weight.detach().to("cpu", copy=True))
            delta = updown * multiplier * mod.scale
            weight.add_(delta.to(device=weight.device, dtype=weight.dtype))


# --- refs from prompts and jobs -----------------------------------------------------


@dataclass(frozen=True)
class LoraRequest:
    name: str
    unet: float
    te: float


def resolve(name: str, available: dict[str, Path]) -> Path:
    """Find a LoRA by name the way A1111 does: the file name without extension."""
    if name in available:
        return available[name]
    lowered = {k.lower(): v for k, v in available.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    known = ", ".join(sorted(available)[:20]) or "none"
    raise DreamwireError(ErrorCode.LORA_NOT_FOUND, f"LoRA {name!r} not found; available: {known}")


_CACHE: dict[tuple[str, float, int], LoraFile] = {}


def read_cached(path: Path, name: str) -> LoraFile:
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = read(path, name)
    return _CACHE[key]
