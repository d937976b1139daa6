"""Which Qwen-Image model a file or folder is.

Qwen-Image, Qwen-Image-Edit and Edit-2509 have the same transformer (same keys and shapes):
a diffusers folder says which by its pipeline class (model_index.json); where nothing else
does, the name does ("edit", "2509"/"2511"), as ComfyUI's file names carry it. Layered has
keys of its own (`time_text_embed.addition_t_embedding`, diffusers' `use_additional_t_cond`:
ComfyUI's model_detection tells it the same way), and Edit-2511 a `__index_timestep_zero__`
marker in ComfyUI's files (diffusers' `zero_cond_t`). The tiny test models are told by
their text width (joint_attention_dim 16; the real one is Qwen2.5-VL-7B's 3584).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.safetensors_header import Header

TINY_MAX_WIDTH = 64
_EDIT_PIPELINES = {
    "QwenImageEditPipeline": "edit",
    "QwenImageEditInpaintPipeline": "edit",
    "QwenImageEditPlusPipeline": "edit-2509",
    "QwenImageLayeredPipeline": "layered",
}


def qwen_kind_from_name(name: str) -> str:
    """ "" (Qwen-Image), "edit", "edit-2509" or "layered" from a file or folder name."""
    low = name.lower()
    if "layered" in low:
        return "layered"
    if "edit" in low:
        return "edit-2509" if ("2509" in low or "2511" in low or "plus" in low) else "edit"
    return ""


def tiny_twin(kind: str) -> str:
    """The catalog's tiny model of a kind (one tiny Edit serves Edit and Edit-2509)."""
    if kind == "layered":
        return "tiny-qwen-image-layered"
    return "tiny-qwen-image-edit" if kind.startswith("edit") else "tiny-qwen-image"


def qwen_folder_arch(folder: Path, transformer_config: dict) -> str:
    """The catalog arch of a diffusers Qwen-Image folder."""
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    tiny = int(transformer_config.get("joint_attention_dim", 3584)) <= TINY_MAX_WIDTH
    if transformer_config.get("use_additional_t_cond"):
        kind = "layered"
    else:
        kind = _EDIT_PIPELINES.get(index.get("_class_name", ""), "")
        kind = kind or qwen_kind_from_name(folder.name)
    arch = "qwen-image" + (f"-{kind}" if kind else "")
    return tiny_twin(kind) if tiny else arch


# -- single files (ComfyUI's layout: diffusers' own key names, diffusers' single-file
# mapping for QwenImageTransformer2DModel is the identity) ---------------------------------
COMFY_TRANSFORMER = "model.diffusion_model."
_MARKERS = ("txt_norm.weight", "img_in.weight")
_LAYERED = "time_text_embed.addition_t_embedding.weight"
_ZERO_COND = "__index_timestep_zero__"  # ComfyUI's marker for Edit-2511 (zero_cond_t)


@dataclass(frozen=True)
class QwenFile:
    """What a Qwen-Image transformer file is."""

    arch: str  # "qwen-image", "qwen-image-edit", "qwen-image-edit-2509", "qwen-image-layered"
    kind: str  # "", "edit", "edit-2509", "layered"
    prefix: str  # "" or "model.diffusion_model."
    told_by: str  # "keys" (Layered, 2511) or "name" (Qwen-Image vs Edit vs 2509)

    def detail(self) -> dict:
        return {
            "family": "qwen-image",
            "variant": self.kind,
            "transformer_prefix": self.prefix,
            "told_by": self.told_by,
        }


def qwen_file(header: Header, path: Path) -> QwenFile | None:
    prefix = next(
        (p for p in ("", COMFY_TRANSFORMER) if all(p + m in header.tensors for m in _MARKERS)),
        None,
    )
    if prefix is None:
        return None
    if prefix + _LAYERED in header.tensors:
        kind, told_by = "layered", "keys"
    elif prefix + _ZERO_COND in header.tensors:
        kind, told_by = "edit-2509", "keys"
    else:
        kind, told_by = qwen_kind_from_name(path.name), "name"
    txt_in = header.shape(prefix + "txt_in.weight")
    if txt_in is not None and txt_in[-1] <= TINY_MAX_WIDTH:
        arch = tiny_twin(kind)
    else:
        arch = "qwen-image" + (f"-{kind}" if kind else "")
    return QwenFile(arch=arch, kind=kind, prefix=prefix, told_by=told_by)


# Qwen2.5-VL as ComfyUI ships it (qwen_2.5_vl_7b.safetensors, its fp8_scaled twin): Hugging
# Face's original names (`model.layers.*`, `visual.*`); transformers 5 saves it under
# `model.language_model.*`. Qwen2.5 has biases on its k projections (Qwen3, Z-Image's
# encoder, has not: ComfyUI's detect_te_model tells them the same way).
_QWEN25_TEXT = (
    "model.layers.0.self_attn.k_proj.bias",
    "model.language_model.layers.0.self_attn.k_proj.bias",
)
_QWEN25_EMBED = ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight")


def qwen_text_encoder_arch(header: Header) -> str | None:
    """ "qwen2.5-vl-7b" (with its vision tower) or "qwen2.5-7b" (text only), tiny twins as
    "tiny-qwen2.5-vl"; None for anything else."""
    if not any(k in header.tensors for k in _QWEN25_TEXT):
        return None
    width = next((s[-1] for k in _QWEN25_EMBED if (s := header.shape(k))), 0)
    vision = header.has_prefix("visual.") or header.has_prefix("model.visual.")
    if width and width <= TINY_MAX_WIDTH:
        return "tiny-qwen2.5-vl"
    return "qwen2.5-vl-7b" if vision else "qwen2.5-7b"


# Qwen2.5-VL converted by llama.cpp (unsloth's / ggml-org's Qwen2.5-VL-7B-Instruct-*.gguf,
# what ComfyUI-GGUF's CLIP loader reads for Qwen-Image): `general.architecture` "qwen2vl",
# llama.cpp's names (`blk.N.attn_k.bias`), the vision tower in a separate mmproj file.
# transformers' GGUF loader has no qwen2vl architecture (5.25 maps qwen2/qwen3, not their
# VL models' multimodal rotary sections), so such a file is listed and refused by name.
QWEN_VL_GGUF = "qwen2.5-vl-gguf"


def qwen_vl_gguf_refusal(header: Header, name: str) -> str | None:
    """Why a GGUF Qwen2.5-VL text encoder does not load (None for any other file)."""
    if header.metadata.get("general.architecture") != "qwen2vl":
        return None
    return (
        f"{name} is Qwen2.5-VL in llama.cpp's GGUF form, which transformers cannot load (no "
        "qwen2vl GGUF architecture); for Qwen-Image put qwen_2.5_vl_7b.safetensors or "
        "qwen_2.5_vl_7b_fp8_scaled.safetensors in models/text_encoders"
    )


def qwen_vae_arch(header: Header) -> str | None:
    """The Qwen-Image (Wan 2.1) VAE: 3D convolutions, as Wan's own names (ComfyUI's
    qwen_image_vae.safetensors: `encoder.conv1`) or diffusers' (`encoder.conv_in`).
    Qwen-Image-Layered's VAE takes RGBA (4 input channels)."""
    for key in ("encoder.conv1.weight", "encoder.conv_in.weight"):
        shape = header.shape(key)
        if shape is not None and len(shape) == 5:
            tiny = "tiny-" if shape[0] < 32 else ""
            rgba = "-rgba" if shape[1] == 4 else ""
            return f"{tiny}qwen-image-vae{rgba}"
    return None


def is_qwen_file(entry: ModelEntry) -> bool:
    return (
        entry.kind == Kind.CHECKPOINT
        and entry.format != Format.DIFFUSERS
        and entry.detail.get("family") == "qwen-image"
    )
