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
import re
from functools import lru_cache
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library.entries import Kind
from dreamwire.backend.library.flux2_identify import arch_for as flux2_arch_for
from dreamwire.backend.library.flux_identify import vae_latent_channels
from dreamwire.backend.library.qwen_identify import qwen_folder_arch, qwen_vae_arch
from dreamwire.backend.library.safetensors_header import Header
from dreamwire.backend.library.sd3_identify import folder_arch as sd3_folder_arch
from dreamwire.backend.library.sd3_identify import is_sd3_transformer_config
from dreamwire.backend.library.upscaler_layout import describe as describe_upscaler
from dreamwire.backend.library.zimage_identify import TINY_MAX_WIDTH as ZIMAGE_TINY_WIDTH

UNET = "model.diffusion_model."
CONV_IN = UNET + "input_blocks.0.0.weight"
TINY_WIDTH = 32
# Flux Fill's transformer input: packed latents (64) + masked picture (64) + mask (256).
FLUX_FILL_CHANNELS = 384


# UNet input channels other than 4 mark special-purpose models; the suffix names them so
# that loading one fails with "architecture 'sd1-inpaint' ..." rather than a shape error.
_INPUT_VARIANTS = {4: "", 9: "-inpaint", 5: "-depth", 8: "-ip2p"}


def checkpoint_arch(header: Header, path: Path) -> str | None:
    keys = header.tensors
    conv_in = header.shape(CONV_IN)
    if conv_in is None or len(conv_in) != 4:
        return None
    tiny = conv_in[0] <= TINY_WIDTH
    if any(k.startswith("conditioner.embedders.1.model.") for k in keys):
        arch = "tiny-sdxl" if tiny else "sdxl-base"
    elif any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        return "sdxl-refiner"
    elif any(k.startswith("cond_stage_model.model.") for k in keys) or _cross_width(header) == 1024:
        arch = "sd2-v" if _sd2_is_v(header, path) else "sd2-base"
    else:
        arch = "tiny-sd1" if tiny else "sd1"
    return arch + _INPUT_VARIANTS.get(conv_in[1], f"-in{conv_in[1]}")


def _cross_width(header: Header) -> int | None:
    for key, info in header.tensors.items():
        if key.startswith(UNET) and key.endswith("attn2.to_k.weight"):
            return int(info["shape"][-1])
    return None


def _sd2_is_v(header: Header, path: Path) -> bool:
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        text = sidecar.read_text(errors="replace")
        return re.search(r"^\s*parameterization\s*:\s*[\"']?v[\"']?\s*$", text, re.M) is not None
    prediction = header.metadata.get("modelspec.prediction_type", "")
    if prediction:
        return prediction.startswith("v")
    lowered = path.stem.lower()
    return not ("base" in lowered or "512" in lowered)


def diffusers_arch(folder: Path) -> str | None:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    if "transformer" in index:
        return _transformer_folder_arch(folder)
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    tiny = unet.get("block_out_channels", [320])[0] <= TINY_WIDTH
    channels = int(unet.get("in_channels", 4))
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
    return arch + _INPUT_VARIANTS.get(channels, f"-in{channels}")


def _transformer_folder_arch(folder: Path) -> str | None:
    """A transformer folder: SD3 (library/sd3_identify.py); Flux: dev has the guidance
    embedding, schnell not, Fill a wider input, Kontext its own pipeline class; a Z-Image
    folder by its transformer class; the tiny test models are told by their width."""
    try:
        config = json.loads((folder / "transformer" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if config.get("_class_name") == "Flux2Transformer2DModel":
        heads, head = (
            int(config.get("num_attention_heads", 0)),
            int(config.get("attention_head_dim", 0)),
        )
        return flux2_arch_for(int(config.get("joint_attention_dim", 0)), heads * head)
    if config.get("_class_name") == "ZImageTransformer2DModel":
        return (
            "tiny-zimage" if int(config.get("dim", 3840)) <= ZIMAGE_TINY_WIDTH else "zimage-turbo"
        )
    if is_sd3_transformer_config(config):
        return sd3_folder_arch(config, folder.name)
    if config.get("_class_name") == "QwenImageTransformer2DModel":
        return qwen_folder_arch(folder, config)
    if config.get("_class_name") != "FluxTransformer2DModel":
        return None
    tiny = "tiny-" if int(config.get("joint_attention_dim", 4096)) <= TINY_WIDTH else ""
    if int(config.get("in_channels", 64)) == FLUX_FILL_CHANNELS:
        return tiny + "flux-fill"
    # Kontext has dev's weights' shapes: its pipeline class (or its name) tells it.
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    if index.get("_class_name") == "FluxKontextPipeline" or "kontext" in folder.name.lower():
        return tiny + "flux-kontext"
    if tiny:
        return "tiny-flux"
    return "flux-dev" if config.get("guidance_embeds") else "flux-schnell"


def vae_arch(header: Header) -> str | None:
    """VAE files: `encoder.conv_in.weight` (A1111, Flux's ae.safetensors) or with a
    `first_stage_model.` prefix. Flux's VAE has 16 latent channels (SD's 4); SD3's VAE has
    the same shapes and can only be told by its scaling factor, which no file stores."""
    qwen = qwen_vae_arch(header)  # 3D convolutions: not an SD/Flux VAE's 2D ones
    if qwen is not None:
        return qwen
    for prefix in ("", "first_stage_model.", "vae."):
        shape = header.shape(prefix + "encoder.conv_in.weight")
        if shape is not None:
            tiny = shape[0] < 128
            channels = vae_latent_channels(header, prefix)
            if channels == 16:
                return "tiny-flux-vae" if tiny else "flux-vae"
            if channels == 32:  # Flux.2's VAE (flux2-vae.safetensors)
                return "tiny-flux2-vae" if tiny else "flux2-vae"
            return "tiny-vae" if tiny else "sd-vae"
    return None


@lru_cache(maxsize=1)
def _width_families() -> dict[int, str]:
    """UNet cross-attention width -> family, from the catalog ("sd1": 768, "tiny-sdxl": 96,
    ...); transformer families are told apart by their own keys, not by this width."""
    widths: dict[int, str] = {}
    for arch in catalog.archs():
        unet = catalog.config_dir(arch) / "unet" / "config.json"
        if not unet.is_file():
            continue
        config = json.loads(unet.read_text())
        family = arch if arch.startswith("tiny") else catalog.arch_info(arch)["family"]
        widths.setdefault(int(config["cross_attention_dim"]), family)
    return widths


def family_for_width(width: int) -> str | None:
    return _width_families().get(int(width))


def addon_family(kind: Kind, header: Header) -> str | None:
    """A best-effort family ("sd1", "sd2", "sdxl", "tiny-sd1", ...) for LoRA, embeddings and
    ControlNets, used to warn about mismatches; None when unsure."""
    keys = header.tensors
    if kind == Kind.EMBEDDING:
        if "clip_g" in keys:  # SDXL embeddings carry one vector set per text encoder
            width = (header.shape("clip_g") or (0,))[-1]
            return "sdxl" if width == 1280 else "tiny-sdxl"
        for key in ("emb_params", "string_to_param.*"):
            shape = header.shape(key)
            if shape:
                return {768: "sd1", 1024: "sd2", 32: "tiny-sd1"}.get(shape[-1])
        return None
    for key, info in keys.items():
        # The key (text) projection of a cross-attention layer reads the text width.
        if "attn2" not in key or "to_k" not in key:
            continue
        shape = info["shape"]
        if kind == Kind.CONTROLNET and key.endswith("to_k.weight") and len(shape) == 2:
            return family_for_width(shape[-1])
        # LoHa's w1_b is its down matrix (rank x input width).
        down = ("lora_down", "lora_A", "hada_w1_b")
        if kind == Kind.LORA and any(d in key for d in down) and len(shape) == 2:
            return family_for_width(shape[-1])
    return None


def upscaler_arch(header: Header) -> str:
    """spandrel's reading of the header: "ESRGAN 4x", "SPAN 2x", "DAT" ... or "unknown"."""
    return describe_upscaler({k: v["shape"] for k, v in header.tensors.items()})


def diffusers_addon_family(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    width = config.get("cross_attention_dim")
    return family_for_width(width) if isinstance(width, int) else None
