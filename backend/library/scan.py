"""Finding model files in the folder layouts artists already have.

A1111 keeps models under `models/<Kind>` (with `embeddings/` beside `models/` in the webui
folder); ComfyUI under `models/<kind>`, with transformer-only files (Flux) in `models/unet` or
`models/diffusion_models` and text encoders in `models/text_encoders` or `models/clip`; Forge
adds `models/text_encoder`. A Hugging Face hub cache folder is also accepted. A root may be the webui/ComfyUI folder, its
`models` folder, or any folder holding such subfolders; folder names match regardless of
case. A checkpoint's name is its path relative to the kind folder, without extension, as
A1111 shows it ("sd15/dreamshaper_8").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from dreamwire.backend.library import prediction
from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.flux2_identify import flux2_file
from dreamwire.backend.library.flux_identify import flux_file, text_encoder_arch
from dreamwire.backend.library.gguf_header import SUFFIX as GGUF_SUFFIX
from dreamwire.backend.library.gguf_header import read_gguf_header
from dreamwire.backend.library.identify import (
    addon_family,
    checkpoint_arch,
    diffusers_addon_family,
    diffusers_arch,
    upscaler_arch,
    vae_arch,
)
from dreamwire.backend.library.marigold import entry_sources, is_marigold_folder
from dreamwire.backend.library.pickles import PICKLE_SUFFIXES
from dreamwire.backend.library.qwen_identify import (
    QWEN_VL_GGUF,
    qwen_file,
    qwen_text_encoder_arch,
    qwen_vl_gguf_refusal,
)
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.backend.library.sd3_identify import sd3_file
from dreamwire.backend.library.vision_identify import clip_vision_arch, style_model_arch
from dreamwire.backend.library.zimage_identify import qwen3_arch, zimage_file
from dreamwire.shared.errors import DreamwireError, ErrorCode

# Folder names per kind: A1111 first, then ComfyUI, then common extras.
KIND_FOLDERS: dict[Kind, tuple[str, ...]] = {
    Kind.CHECKPOINT: ("Stable-diffusion", "checkpoints", "diffusers", "unet", "diffusion_models"),
    Kind.VAE: ("VAE", "vae"),
    Kind.LORA: ("Lora", "loras", "LyCORIS"),
    Kind.EMBEDDING: ("embeddings",),
    # ComfyUI's x-flux nodes read XLabs' Flux ControlNets from models/xlabs/controlnets, and
    # its ModelPatchLoader Alibaba's Z-Image Fun ControlNets from models/model_patches.
    Kind.CONTROLNET: (
        "ControlNet",
        "controlnet",
        "ipadapter",
        "xlabs/controlnets",
        "model_patches",
    ),
    Kind.UPSCALER: ("ESRGAN", "upscale_models", "RealESRGAN"),
    Kind.TEXT_ENCODER: ("text_encoder", "text_encoders", "clip"),
    Kind.CLIP_VISION: ("clip_vision",),
    Kind.STYLE_MODEL: ("style_models",),
    # prs-eth's diffusers folders as downloaded: `Marigold` (A1111/Forge-style, the name the
    # Marigold extensions use) or ComfyUI's `diffusers` (ComfyUI-Marigold's folder), told
    # apart from the checkpoints there by their pipeline class (library/marigold.py).
    Kind.MARIGOLD: ("Marigold", "diffusers"),
}

SUFFIXES: dict[Kind, tuple[str, ...]] = {
    Kind.CHECKPOINT: (".safetensors", ".ckpt", GGUF_SUFFIX),
    Kind.VAE: (".safetensors", ".pt", ".ckpt", ".bin"),
    Kind.LORA: (".safetensors", ".pt", ".ckpt"),
    Kind.EMBEDDING: (".safetensors", ".pt", ".bin"),
    Kind.CONTROLNET: (".safetensors", ".pth", ".ckpt", ".pt", ".bin"),
    Kind.UPSCALER: (".pth", ".pt", ".safetensors"),
    Kind.TEXT_ENCODER: (".safetensors", GGUF_SUFFIX),
    Kind.CLIP_VISION: (".safetensors",),
    Kind.STYLE_MODEL: (".safetensors",),
    Kind.MARIGOLD: (),  # folders only
}


def child_folder(folder: Path, name: str) -> Path | None:
    exact = folder / name
    if exact.is_dir():
        return exact
    try:
        for child in folder.iterdir():
            if child.name.lower() == name.lower() and child.is_dir():
                return child
    except OSError:
        return None
    return None


def kind_folders(root: Path) -> dict[Kind, list[Path]]:
    """The kind folders a root provides, checking the root and its `models` subfolder."""
    root = Path(root).expanduser()
    bases = [root]
    models = child_folder(root, "models")
    if models is not None:
        bases.insert(0, models)
    found: dict[Kind, list[Path]] = {}
    for kind, names in KIND_FOLDERS.items():
        for base in bases:
            for name in names:
                folder = child_folder(base, name)
                if folder is not None and folder not in found.get(kind, []):
                    found.setdefault(kind, []).append(folder)
    return found


def strip_suffix(name: str, kind: Kind) -> str:
    for suffix in sorted(SUFFIXES[kind], key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# Kinds stored as whole diffusers pipeline folders (model_index.json).
_PIPELINE_KINDS = (Kind.CHECKPOINT, Kind.MARIGOLD)


def _is_diffusers_folder(path: Path, kind: Kind) -> bool:
    if kind in _PIPELINE_KINDS:
        # One `diffusers` folder may hold both; each folder is one kind, by its pipeline.
        return (path / "model_index.json").is_file() and (
            is_marigold_folder(path) == (kind == Kind.MARIGOLD)
        )
    if kind in (Kind.VAE, Kind.CONTROLNET):
        return (path / "config.json").is_file() and any(path.glob("*.safetensors"))
    return False


def _walk(folder: Path, kind: Kind) -> Iterator[tuple[Path, Format]]:
    # Artists symlink model folders between installs; following links is needed, but a link
    # back up the tree must not loop forever.
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for name in sorted(dirnames):
            if name.startswith(".") or os.path.realpath(here / name) in seen:
                continue
            if _is_diffusers_folder(here / name, kind):
                yield here / name, Format.DIFFUSERS
            elif kind not in _PIPELINE_KINDS or not (here / name / "model_index.json").is_file():
                # A pipeline folder of the other kind (a Marigold folder among ComfyUI's
                # diffusers checkpoints) is neither listed nor searched for files.
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            suffix = Path(name).suffix.lower()
            if suffix not in SUFFIXES[kind]:
                continue
            fmt = Format.SAFETENSORS
            if suffix in PICKLE_SUFFIXES:
                fmt = Format.PICKLE
            elif suffix == GGUF_SUFFIX:
                fmt = Format.GGUF
            yield here / name, fmt


def identify(entry: ModelEntry) -> None:
    """Fill entry.arch from the header (safetensors) or config (diffusers folder)."""
    try:
        if entry.format == Format.DIFFUSERS:
            if entry.kind == Kind.CHECKPOINT:
                entry.arch = diffusers_arch(entry.path)
                if prediction.applies_to(entry.arch):
                    entry.detail.update(prediction.of_folder(entry.path).to_detail())
            elif entry.kind == Kind.MARIGOLD:
                entry.arch = "marigold"
                entry.detail["maps"] = [s.map for s in entry_sources(entry)]
            elif entry.kind == Kind.VAE:
                entry.arch = "diffusers-vae"
            else:
                entry.arch = diffusers_addon_family(entry.path)
            return
        if entry.format == Format.GGUF:
            header = read_gguf_header(entry.path)
        elif entry.format == Format.SAFETENSORS:
            header = read_header(entry.path)
        else:
            return
        if entry.kind == Kind.CHECKPOINT:
            entry.arch = checkpoint_arch(header, entry.path)
            if entry.arch is None and (flux2 := flux2_file(header)) is not None:
                entry.arch = flux2.arch
                entry.detail.update(flux2.detail())
            if prediction.applies_to(entry.arch):  # v_pred / ztsnr marker keys
                entry.detail.update(prediction.from_keys(header.tensors).to_detail())
            if entry.arch is None and (flux := flux_file(header, entry.path)) is not None:
                entry.arch = flux.arch
                entry.detail.update(flux.detail())
            if entry.arch is None and (zimage := zimage_file(header)) is not None:
                entry.arch = zimage.arch
                entry.detail.update(zimage.detail())
            if entry.arch is None and (sd3 := sd3_file(header, entry.path)) is not None:
                entry.arch = sd3.arch
                entry.detail.update(sd3.detail())
            if entry.arch is None and (qwen := qwen_file(header, entry.path)) is not None:
                entry.arch = qwen.arch
                entry.detail.update(qwen.detail())
        elif entry.kind == Kind.TEXT_ENCODER:
            # Before the others: llama.cpp names its embedding token_embd as GGUF T5s do.
            refusal = qwen_vl_gguf_refusal(header, entry.path.name)
            if refusal is not None:
                entry.arch = QWEN_VL_GGUF
                raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, refusal)
            entry.arch = (
                qwen3_arch(header) or text_encoder_arch(header) or qwen_text_encoder_arch(header)
            )
        elif entry.kind == Kind.VAE:
            entry.arch = vae_arch(header)
        elif entry.kind == Kind.UPSCALER:
            entry.arch = upscaler_arch(header)
        elif entry.kind == Kind.CLIP_VISION:
            entry.arch = clip_vision_arch(header)
        elif entry.kind == Kind.STYLE_MODEL:
            entry.arch = style_model_arch(header)
        else:
            entry.arch = addon_family(entry.kind, header)
        entry.detail["tensors"] = len(header.tensors)
    except DreamwireError as exc:
        # A damaged file stays listed (the artist sees it) but fails clearly when used.
        entry.detail["error"] = exc.message
        entry.detail["error_code"] = exc.code.value


def _hub_snapshot(repo: Path) -> Path | None:
    """The snapshot `refs/main` points at, else the newest one."""
    snapshots = repo / "snapshots"
    try:
        ref = (repo / "refs" / "main").read_text().strip()
    except OSError:
        ref = ""
    if ref and (snapshots / ref).is_dir():
        return snapshots / ref
    try:
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


_HUB_CLASSES = {
    "AutoencoderKL": Kind.VAE,
    "ControlNetModel": Kind.CONTROLNET,
    "ControlNetUnionModel": Kind.CONTROLNET,
}


def scan_hub_cache(root: Path) -> list[ModelEntry]:
    """A Hugging Face hub cache (`models--org--name/snapshots/<rev>/`): models downloaded
    earlier with diffusers are listed under their hub id ("org/name") and load offline."""
    entries = []
    try:
        repos = sorted(p for p in Path(root).iterdir() if p.name.startswith("models--"))
    except OSError:
        return entries
    for repo in repos:
        parts = repo.name.split("--")
        snapshot = _hub_snapshot(repo)
        if len(parts) < 3 or snapshot is None:
            continue
        name = f"{parts[1]}/{'--'.join(parts[2:])}"
        if (snapshot / "model_index.json").is_file():
            kind = Kind.MARIGOLD if is_marigold_folder(snapshot) else Kind.CHECKPOINT
        else:
            try:
                cls = json.loads((snapshot / "config.json").read_text()).get("_class_name")
            except (OSError, ValueError):
                continue
            if cls not in _HUB_CLASSES:
                continue
            kind = _HUB_CLASSES[cls]
        entry = ModelEntry(kind=kind, name=name, path=snapshot, format=Format.DIFFUSERS, root=root)
        identify(entry)
        entry.detail["hub_id"] = name
        entries.append(entry)
    return entries


def scan_root(root: Path) -> list[ModelEntry]:
    if any(Path(root).glob("models--*--*/snapshots")):
        return scan_hub_cache(root)
    entries = []
    for kind, folders in kind_folders(root).items():
        for folder in folders:
            for path, fmt in _walk(folder, kind):
                rel = path.relative_to(folder).as_posix()
                name = rel if fmt == Format.DIFFUSERS else strip_suffix(rel, kind)
                entry = ModelEntry(kind=kind, name=name, path=path, format=fmt, root=folder)
                identify(entry)
                entries.append(entry)
    return entries
