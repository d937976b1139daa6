"""AnimateDiff motion modules: where artists keep them, what a file is, and loading it as
diffusers' MotionAdapter.

Folders looked in, for every model root (an A1111 or ComfyUI install, or ComfyUI's models
folder), then Dreamwire's own ($DREAMWIRE_MOTION_MODULES, else <cache>/dreamwire/motion_modules):
  <root>/extensions/sd-webui-animatediff/model             A1111's AnimateDiff extension
  <root>/custom_nodes/ComfyUI-AnimateDiff-Evolved/models   ComfyUI's AnimateDiff-Evolved
  <root>/models/animatediff_models, <root>/animatediff_models   ComfyUI's shared folder

Two layouts, told apart by their keys (a safetensors header, or the tensors a .ckpt gives
Dreamwire's weights-only loader):
  original   AnimateDiff's own (mm_sd_v15_v2.ckpt, v3_sd15_mm ...):
             down_blocks.N.motion_modules.M.temporal_transformer.transformer_blocks.K.
             attention_blocks.{0,1}.to_q / pos_encoder.pe, norms.{0,1}, ff_norm, ff.net ...
  diffusers  MotionAdapter's state dict (a file, or a folder with config.json)
The original keys are renamed as diffusers' convert_animatediff_motion_module_to_diffusers
script does, except that the positional tables are kept (diffusers' `pos_embed.pe` is a
stored buffer too), so every tensor of the file lands in the adapter. The adapter's shape
(block widths, modules per block, mid block, frames the table covers) is read from the
tensors; the attention head count (8) and group-norm groups (32) are AnimateDiff's fixed
choices and are not stored in any file.

SD1.5 and SDXL modules (mm_sd_v15*, v3_sd15_mm; mm_sdxl_v10_beta) have the same layout and
are told apart by their down blocks, as the UNets they were trained in: SD1.x/SD2.x UNets
have four ([320, 640, 1280, 1280]), SDXL's three ([320, 640, 1280]). A module of another
shape (a tiny test module, a custom one) has no family and fits a UNet of its widths.
Hotshot-XL's temporal layers (`temporal_attentions` keys) load in no diffusers pipeline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .pickles import safe_torch_load

FOLDERS = (
    Path("extensions/sd-webui-animatediff/model"),
    Path("custom_nodes/ComfyUI-AnimateDiff-Evolved/models"),
    Path("models/animatediff_models"),
    Path("animatediff_models"),
)
SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
HEADS = 8  # AnimateDiff's temporal attention heads, in every released module
# The families' UNets by their down-block count (see above); the label names the modules.
FAMILY_BLOCKS = {4: "sd1", 3: "sdxl"}
FAMILY_LABELS = {"sd1": "SD1.5 (mm_sd_v15*, v3_sd15_mm)", "sdxl": "SDXL (mm_sdxl_v10_beta)"}
ORIGINAL_RENAMES = (
    (".temporal_transformer", ""),
    (".attention_blocks.0.pos_encoder.pe", ".pos_embed.pe"),
    (".norms.0", ".norm1"),
    (".norms.1", ".norm2"),
    (".ff_norm", ".norm3"),
    (".attention_blocks.0", ".attn1"),
    (".attention_blocks.1", ".attn2"),
)
_SECOND_TABLE = ".attention_blocks.1.pos_encoder.pe"
_MODULE = re.compile(r"^(down_blocks\.(\d+)|up_blocks\.(\d+)|mid_block)\.motion_modules\.(\d+)\.")


def own_folder() -> Path:
    if env := os.environ.get("DREAMWIRE_MOTION_MODULES"):
        return Path(env)
    from dreamwire.backend.library.catalog import cache_root

    return cache_root() / "motion_modules"


def search_folders(roots: Iterable[Path | str] = ()) -> list[Path]:
    return [*(Path(r) / f for r in roots for f in FOLDERS), own_folder()]


@dataclass(frozen=True)
class MotionModuleInfo:
    name: str  # the file's stem (a folder's name), as the artist picks it
    path: Path
    layout: str  # "original" | "diffusers" | "diffusers_folder"
    block_out_channels: tuple[int, ...]
    layers_per_block: int  # motion modules per down block (up blocks have one more)
    transformer_layers: int  # temporal transformer blocks per motion module
    mid_block: bool
    max_seq_length: int  # frames the positional table covers
    family: str = ""  # "sd1" | "sdxl" by the block count; "": neither shape (fits by widths)

    def adapter_config(self) -> dict[str, Any]:
        return {
            "block_out_channels": self.block_out_channels,
            "motion_layers_per_block": self.layers_per_block,
            "motion_transformer_layers_per_block": self.transformer_layers,
            "motion_transformer_layers_per_mid_block": self.transformer_layers,
            "motion_num_attention_heads": HEADS,
            "motion_norm_num_groups": 32,
            "motion_max_seq_length": self.max_seq_length,
            "use_motion_mid_block": self.mid_block,
        }


def candidates(roots: Iterable[Path | str] = ()) -> list[Path]:
    """Every file or MotionAdapter folder in the search folders, in their order."""
    found = []
    for folder in search_folders(roots):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in SUFFIXES or (p / "config.json").is_file():
                found.append(p)
    return found


def names(roots: Iterable[Path | str] = ()) -> list[str]:
    return list(dict.fromkeys(_name(p) for p in candidates(roots)))


def _name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def find(name: str, roots: Iterable[Path | str] = ()) -> Path:
    """The motion module called `name` (stem or file name); MODEL_NOT_FOUND naming the
    folders looked in."""
    roots = list(roots)
    for p in candidates(roots):
        if name in (p.name, _name(p)):
            return p
    where = "; ".join(str(f) for f in search_folders(roots))
    have = ", ".join(names(roots)) or "none"
    raise DreamwireError(
        ErrorCode.MODEL_NOT_FOUND,
        f"no motion module {name!r} (found: {have}); put AnimateDiff motion modules "
        f"(e.g. mm_sd_v15_v2.safetensors) in one of: {where}",
    )


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes without loading a safetensors file; a pickle goes through
    the weights-only loader (it has no header)."""
    if path.is_dir():
        path = _folder_weights(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"motion module {path.name} is unreadable: {exc}"
            ) from None
    return {k: tuple(v.shape) for k, v in _tensors(path).items()}


def _folder_weights(folder: Path) -> Path:
    for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / n).is_file():
            return folder / n
    raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{folder.name} holds no MotionAdapter weights")


def _tensors(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = _folder_weights(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        _shapes(path)  # a clear MODEL_CORRUPT for a damaged file
        state = load_file(str(path), device="cpu")
    else:
        state = safe_torch_load(path)  # weights-only: a pickle that runs code is refused
        if not isinstance(state, dict):
            raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{path.name} holds no tensors")
    if isinstance(state.get("state_dict"), dict):  # Lightning-style wrapper
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items() if hasattr(v, "shape")}


def identify(path: Path) -> MotionModuleInfo:
    """What a motion module file is, from its tensor names and shapes."""
    path = Path(path)
    shapes = _shapes(path)
    keys = [k.removeprefix("module.") for k in shapes]
    shapes = dict(zip(keys, shapes.values(), strict=True))
    mm = [k for k in keys if _MODULE.match(k)]
    if any(".temporal_attentions." in k for k in keys):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{path.name} is a Hotshot-XL temporal layers file: diffusers has no Hotshot-XL "
            "pipeline, so it does not run here; use an AnimateDiff SDXL motion module "
            "(mm_sdxl_v10_beta)",
        )
    if not mm:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{path.name} is not an AnimateDiff motion module: no motion_modules keys",
        )
    original = any(".temporal_transformer." in k for k in mm)
    layout = "original" if original else ("diffusers_folder" if path.is_dir() else "diffusers")
    downs: dict[int, set[int]] = {}
    blocks = set()
    for k in mm:
        m = _MODULE.match(k)
        if m.group(2) is not None:
            downs.setdefault(int(m.group(2)), set()).add(int(m.group(4)))
        tb = re.search(r"\.transformer_blocks\.(\d+)\.", k)
        if tb:
            blocks.add(int(tb.group(1)))
    if not downs or sorted(downs) != list(range(len(downs))):
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{path.name}: down blocks incomplete")
    prefix = ".temporal_transformer" if original else ""
    widths = []
    for i in range(len(downs)):
        w = shapes.get(f"down_blocks.{i}.motion_modules.0{prefix}.proj_in.weight")
        if w is None:
            raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{path.name}: no proj_in in block {i}")
        widths.append(int(w[0]))
    table = next((s for k, s in shapes.items() if k.endswith("pe") and len(s) == 3), None)
    return MotionModuleInfo(
        name=_name(path),
        path=path,
        layout=layout,
        block_out_channels=tuple(widths),
        layers_per_block=len(downs[0]),
        transformer_layers=max(blocks) + 1 if blocks else 1,
        mid_block=any(k.startswith("mid_block.") for k in mm),
        max_seq_length=int(table[1]) if table else 32,
        family=FAMILY_BLOCKS.get(len(widths), ""),
    )


def convert_original(state: dict[str, Any]) -> dict[str, Any]:
    """AnimateDiff's keys as MotionAdapter's. Each temporal block holds one positional table
    per attention; diffusers keeps one, so the second must equal the first (it does in
    every released module: both are the same fixed sinusoid)."""
    import torch

    out = {}
    for k, v in state.items():
        if k.endswith(_SECOND_TABLE):
            first = state.get(k.replace(_SECOND_TABLE, ".attention_blocks.0.pos_encoder.pe"))
            if first is None or not torch.equal(first, v):
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"{k}: a second positional table unlike the first; diffusers' MotionAdapter "
                    "has one per block",
                )
            continue
        for old, new in ORIGINAL_RENAMES:
            k = k.replace(old, new)
        out[k] = v
    return out


def load_adapter(info: MotionModuleInfo):
    """The module as diffusers' MotionAdapter (float32, CPU), every tensor of the file used
    and every weight of the adapter filled; MODEL_CORRUPT otherwise."""
    from diffusers import MotionAdapter

    state = _tensors(info.path)
    if info.layout == "original":
        state = convert_original(state)
    adapter = MotionAdapter(**info.adapter_config())
    try:
        missing, unexpected = adapter.load_state_dict(
            {k: v.float() for k, v in state.items()}, strict=False
        )
    except RuntimeError as exc:  # a tensor of the wrong shape
        msg = str(exc).splitlines()[0]
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"motion module {info.name}: {msg}") from None
    if missing or unexpected:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"motion module {info.name} does not fill a MotionAdapter: missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}",
        )
    return adapter.eval()


def check_family(info: MotionModuleInfo, family: str, model_label: str) -> None:
    """MODEL_MISMATCH naming both when the module was made for the other family (an SD1.5
    module on an SDXL checkpoint, or the reverse)."""
    if info.family and info.family != family:
        want = FAMILY_LABELS.get(family, family)
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"motion module {info.name} is an {FAMILY_LABELS[info.family]} module "
            f"({len(info.block_out_channels)} down blocks), but {model_label} is a {family} "
            f"checkpoint: pick an {want} motion module",
        )


def check_fits(info: MotionModuleInfo, unet_config: dict, model_label: str) -> None:
    """MODEL_MISMATCH unless the module's blocks have the UNet's widths (an SD1.5 module on
    an SDXL model, or the reverse)."""
    widths = tuple(unet_config.get("block_out_channels", ()))
    if widths != info.block_out_channels:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"motion module {info.name} is for a UNet with blocks {list(info.block_out_channels)} "
            f"wide, but {model_label} has {list(widths)}: pick a module made for its family "
            "(mm_sd_v15* for SD1.5, mm_sdxl* for SDXL)",
        )
