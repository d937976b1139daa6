"""A tiny random-weight SD3.5 in the layouts artists download.

The MMDiT (MMDiT-X style: one dual-attention block, so Medium's layout is exercised), the
16-channel VAE, CLIP-L, CLIP-G and T5 come from the catalog's tiny-sd3 configs after
seeding torch, so every build writes the same weights. Tokenizers: CLIP's real BPE (as
for SD), T5's the tiny unigram one of backend/tiny/flux.py.

- `write_sd3_diffusers_folder`: a StableDiffusion3Pipeline folder.
- `write_stability_checkpoint`: sd3.5_large.safetensors as Stability ships it (MMDiT under
  `model.diffusion_model.`, VAE under `first_stage_model.`), with `text_encoders` the
  "incl_clips" file / ComfyUI bundle (`text_encoders.clip_l|clip_g|t5xxl.transformer.`).
- `write_mmdit`: the MMDiT alone, no prefix; `write_clip`, `write_t5`, `write_vae`: the
  text-encoder folder's clip_l/clip_g/t5xxl files and a VAE file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.library import sd3_layout
from dreamwire.backend.library.catalog import write_pipeline_config
from dreamwire.backend.library.flux_layout import t5_to_comfy
from dreamwire.backend.library.ldm_layout import vae_to_ldm
from dreamwire.backend.tiny.files import save_tensors, state_of
from dreamwire.backend.tiny.flux import write_t5_tokenizer

ARCH = "tiny-sd3"
SEED = 20241022
METADATA = {"dreamwire.tiny": "1"}
TEXT_PARTS = ("clip_l", "clip_g", "t5")


def _config(component: str, arch: str = ARCH) -> dict:
    return json.loads((catalog.config_dir(arch) / component / "config.json").read_text())


def sd3_components(arch: str = ARCH) -> dict:
    """The weights-bearing components, seeded: transformer, vae, text_encoder (CLIP-L),
    text_encoder_2 (CLIP-G), text_encoder_3 (T5 encoder)."""
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(SEED + 1)
    transformer = SD3Transformer2DModel.from_config(_config("transformer", arch)).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKL.from_config(_config("vae", arch)).eval()
    torch.manual_seed(SEED + 3)
    clip_l = CLIPTextModelWithProjection(CLIPTextConfig(**_config("text_encoder", arch))).eval()
    torch.manual_seed(SEED + 4)
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**_config("text_encoder_2", arch))).eval()
    torch.manual_seed(SEED + 5)
    t5 = T5EncoderModel(T5Config(**_config("text_encoder_3", arch))).eval()
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": clip_l,
        "text_encoder_2": clip_g,
        "text_encoder_3": t5,
    }


def write_sd3_diffusers_folder(parts: dict, folder: Path, arch: str = ARCH) -> Path:
    """A diffusers StableDiffusion3Pipeline folder: the catalog configs, three tokenizers,
    the weights."""
    from safetensors.torch import save_file

    if folder.exists():
        shutil.rmtree(folder)
    write_pipeline_config(arch, folder)  # configs + both CLIP tokenizers
    write_t5_tokenizer(folder / "tokenizer_3")
    for name, module in parts.items():
        weights = "model" if name.startswith("text_encoder") else "diffusion_pytorch_model"
        target = folder / name / f"{weights}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        tensors = state_of(module)
        tensors.pop("encoder.embed_tokens.weight", None)  # tied to T5's `shared`
        save_file(dict(sorted(tensors.items())), str(target), metadata={"format": "pt"})
    return folder


def clip_tensors(text_encoder) -> dict[str, torch.Tensor]:
    """clip_l.safetensors / clip_g.safetensors as ComfyUI ships them: transformers' names
    (`text_model.*`, `text_projection.weight`)."""
    return {k: v for k, v in state_of(text_encoder).items() if not k.endswith("position_ids")}


def _text_tensors(parts: dict) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "clip_l": clip_tensors(parts["text_encoder"]),
        "clip_g": clip_tensors(parts["text_encoder_2"]),
        "t5": t5_to_comfy(state_of(parts["text_encoder_3"])),
    }


def write_stability_checkpoint(
    parts: dict, path: Path, text_encoders: tuple[str, ...] = (), metadata: dict | None = None
) -> Path:
    """Stability's single file: MMDiT + VAE, plus the named text encoders ("clip_l",
    "clip_g", "t5") as the incl_clips files and ComfyUI's bundles hold them."""
    tensors = {
        sd3_layout.TRANSFORMER + k: v
        for k, v in sd3_layout.diffusers_to_mmdit(state_of(parts["transformer"])).items()
    }
    vae = parts["vae"]
    tensors |= vae_to_ldm(state_of(vae), dict(vae.config), prefix=sd3_layout.VAE)
    prefixes = {"clip_l": sd3_layout.CLIP_L, "clip_g": sd3_layout.CLIP_G, "t5": sd3_layout.T5}
    for name, values in _text_tensors(parts).items():
        if name in text_encoders:
            tensors |= {prefixes[name] + k: v for k, v in values.items()}
    return save_tensors(tensors, path, METADATA | (metadata or {}))


def write_mmdit(transformer, path: Path, dtype: torch.dtype | None = None) -> Path:
    """The MMDiT alone in Stability's names, no prefix (dtype: stored as, e.g. fp8)."""
    tensors = sd3_layout.diffusers_to_mmdit(state_of(transformer))
    if dtype is not None:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    return save_tensors(tensors, path, METADATA)


def write_gguf_mmdit(transformer, path: Path, qtype: str = "Q8_0") -> Path:
    """city96's SD3.5 GGUF layout: the MMDiT's names, no prefix, `general.architecture`
    "sd3", 1-D tensors (and rows ggml's blocks do not divide) kept F32."""
    from dreamwire.backend.tiny.flux_files import write_gguf

    tensors = sd3_layout.diffusers_to_mmdit(state_of(transformer))
    # The position embedding is a table added to the latents, not a layer's weight.
    return write_gguf(tensors, path, "sd3", qtype, full_precision=("pos_embed",))


def write_text_encoder(parts: dict, name: str, path: Path) -> Path:
    """clip_l / clip_g / t5 (t5xxl_fp16.safetensors) as the text-encoder folders hold them."""
    return save_tensors(_text_tensors(parts)[name], path, METADATA)


def write_vae(vae, path: Path) -> Path:
    return save_tensors(vae_to_ldm(state_of(vae), dict(vae.config), prefix=""), path, METADATA)


CONTROLNET_SEED = 20241126


def sd3_controlnet(arch: str = ARCH, joint: bool = False):
    """A seeded SD3ControlNetModel with tiny-sd3's widths, one block, in the form of
    Stability's SD3.5 Large nets (no text stream, no position embedding of its own: the
    pipeline lends it the transformer's), or InstantX's (`joint`: both). As in
    tiny/conditioning.py, the zero-initialised layers get small random values, so that the
    control image and weight really change the result."""
    from diffusers import SD3ControlNetModel

    base = _config("transformer", arch)
    keep = ("sample_size", "patch_size", "in_channels", "attention_head_dim")
    keep += ("num_attention_heads", "caption_projection_dim", "pooled_projection_dim")
    keep += ("out_channels", "pos_embed_max_size")
    config = {k: base[k] for k in keep} | {
        "num_layers": 1,
        "joint_attention_dim": base["joint_attention_dim"] if joint else None,
        "qk_norm": "rms_norm" if joint else None,
        "pos_embed_type": "sincos" if joint else None,
        "use_pos_embed": joint,
        "force_zeros_for_pooled_projection": joint,
    }
    torch.manual_seed(CONTROLNET_SEED)
    net = SD3ControlNetModel.from_config(config).eval()
    with torch.no_grad():
        for module in (net.controlnet_blocks, net.pos_embed_input):
            for param in module.parameters():
                param.normal_(0.0, 0.3)
    return net


def write_sd3_controlnet(net, path: Path) -> Path:
    """The diffusers weights as one file (what artists drop into models/controlnet)."""
    return save_tensors(state_of(net), path, METADATA)
