"""Which architecture a checkpoint or add-on file is, from its header alone.

Real files are told apart by the keys each architecture has and by a few tensor shapes:
SDXL has two text encoders under `conditioner.embedders`, SD2.x has an OpenCLIP ViT-H text
encoder (`cond_stage_model.model.`, cross-attention width 1024), SD1.x has OpenAI's CLIP-L
(`cond_stage_model.transformer.`). The tiny test models have the same keys with a 32-wide
UNet (real ones are 320). SD2 768-v and 512-base share one architecture; the prediction type
cannot be read from weights, so a sidecar `.yaml` (A1111 convention), the
`modelspec.prediction_type` metadata key or a "base"/"512" in the name decides, else v.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamwire.backend.library.entries import Kind
from dreamwire.backend.library.safetensors_header import Header

UNET = "model.diffusion_model."
CONV_IN = UNET + "input_blocks.0.0.weight"
TINY_WIDTH = 32


def checkpoint_arch(header: Header, path: Path) -> str | None:
    keys = header.tensors
    conv_in = header.shape(CONV_IN)
    if conv_in is None:
        return None
    tiny = conv_in[0] <= TINY_WIDTH
    inpaint = conv_in[1] == 9
    if any(k.startswith("conditioner.embedders.1.model.") for k in keys):
        arch = "tiny-sdxl" if tiny else "sdxl-base"
    elif any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        return "sdxl-refiner"
    elif any(k.startswith("cond_stage_model.model.") for k in keys) or _cross_width(header) == 1024:
        arch = "sd2-v" if _sd2_is_v(header, path) else "sd2-base"
    elif any(k.startswith("cond_stage_model.transformer.") for k in keys) or not tiny:
        arch = "tiny-sd1" if tiny else "sd1"
    else:
        arch = "tiny-sd1"
    if inpaint:
        return arch + "-inpaint"
    return arch


def _cross_width(header: Header) -> int | None:
    for key, info in header.tensors.items():
        if key.startswith(UNET) and key.endswith("attn2.to_k.weight"):
            return int(info["shape"][-1])
    return None


def _sd2_is_v(header: Header, path: Path) -> bool:
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        text = sidecar.read_text(errors="replace")
        return "parameterization" in text and '"v"' in text.replace("'", '"')
    prediction = header.metadata.get("modelspec.prediction_type", "")
    if prediction:
        return prediction.startswith("v")
    lowered = path.stem.lower()
    return not ("base" in lowered or "512" in lowered)


def diffusers_arch(folder: Path) -> str | None:
    try:
        index = json.loads((folder / "model_index.json").read_text())
        unet = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    tiny = unet.get("block_out_channels", [320])[0] <= TINY_WIDTH
    inpaint = unet.get("in_channels") == 9
    cls = index.get("_class_name", "")
    if "XL" in cls:
        arch = "tiny-sdxl" if tiny else "sdxl-base"
    elif unet.get("cross_attention_dim") == 1024:
        try:
            sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError):
            sched = {}
        arch = "sd2-v" if sched.get("prediction_type") == "v_prediction" else "sd2-base"
    else:
        arch = "tiny-sd1" if tiny else "sd1"
    return arch + "-inpaint" if inpaint else arch


def vae_arch(header: Header) -> str | None:
    """VAE files: `encoder.conv_in.weight` (A1111) or with a `first_stage_model.` prefix."""
    for prefix in ("", "first_stage_model.", "vae."):
        shape = header.shape(prefix + "encoder.conv_in.weight")
        if shape is not None:
            return "tiny-vae" if shape[0] < 128 else "sd-vae"
    return None


def addon_family(kind: Kind, header: Header) -> str | None:
    """A best-effort family ("sd1", "sd2", "sdxl", "tiny-sd1", ...) for LoRA, embeddings and
    ControlNets, used to warn about mismatches; None when unsure."""
    keys = header.tensors
    if kind == Kind.EMBEDDING:
        if "clip_g" in keys or "clip_l" in keys:
            return "sdxl" if (header.shape("clip_g") or (0, 1280))[-1] >= 1280 else "tiny-sdxl"
        for key in ("emb_params", "string_to_param.*"):
            shape = header.shape(key)
            if shape:
                return {768: "sd1", 1024: "sd2"}.get(
                    shape[-1], "tiny-sd1" if shape[-1] <= 64 else None
                )
        return None
    if kind == Kind.LORA:
        if any(k.startswith("lora_te2_") or k.startswith("lora_te1_") for k in keys):
            return "sdxl"
        for key, info in keys.items():
            if "attn2_to_k.lora_down" in key and key.startswith("lora_unet_"):
                width = info["shape"][-1]
                return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(width)
        return None
    if kind == Kind.CONTROLNET:
        for key, info in keys.items():
            if key.endswith("attn2.to_k.weight"):
                width = info["shape"][-1]
                return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(width, "tiny")
        return None
    return None
