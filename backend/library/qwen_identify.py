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
from pathlib import Path

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
    if tiny:
        # The catalog has the tiny twins of Qwen-Image and Qwen-Image-Edit.
        return "tiny-qwen-image-edit" if kind.startswith("edit") else "tiny-qwen-image"
    return arch
