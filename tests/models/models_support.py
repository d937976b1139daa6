"""Helpers for the model tests: real-size state dicts on the meta device, sparse files."""

from __future__ import annotations

import torch


def meta_components(arch: str) -> dict:
    """The catalog architecture's modules on the meta device: shapes without memory."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from dreamwire import catalog

    folder = catalog.config_dir(arch)

    def cfg(name):
        return json.loads((folder / name / "config.json").read_text())

    with torch.device("meta"):
        parts = {
            "unet": UNet2DConditionModel.from_config(cfg("unet")),
            "vae": AutoencoderKL.from_config(cfg("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**cfg("text_encoder"))),
        }
        if (folder / "text_encoder_2").is_dir():
            parts["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig(**cfg("text_encoder_2"))
            )
    return parts


def ldm_state(arch: str) -> dict:
    """What a real single-file checkpoint of `arch` holds (names and shapes, meta tensors)."""
    import json

    from dreamwire import catalog
    from dreamwire.backend.library.ldm_layout import (
        clip_to_ldm,
        open_clip_to_ldm,
        unet_to_ldm,
        vae_to_ldm,
    )

    parts = meta_components(arch)
    folder = catalog.config_dir(arch)
    state = unet_to_ldm(
        parts["unet"].state_dict(), json.loads((folder / "unet/config.json").read_text())
    )
    state |= vae_to_ldm(
        parts["vae"].state_dict(), json.loads((folder / "vae/config.json").read_text())
    )
    if "text_encoder_2" in parts:
        state |= clip_to_ldm(
            parts["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."
        )
        state |= open_clip_to_ldm(
            parts["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."
        )
    elif arch.startswith("sd2"):
        state |= open_clip_to_ldm(parts["text_encoder"].state_dict(), "cond_stage_model.model.")
    else:
        state |= clip_to_ldm(parts["text_encoder"].state_dict(), "cond_stage_model.transformer.")
    return state


def write_sparse_safetensors(path, shapes: dict, metadata: dict | None = None):
    """A .safetensors file with a real header whose data is a hole: identification reads only
    the header, so a 'real-size' checkpoint costs no disk or time."""
    import json
    import math
    import struct

    header = {}
    offset = 0
    for name, shape in sorted(shapes.items()):
        size = 2 * math.prod(shape)
        header[name] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return path
