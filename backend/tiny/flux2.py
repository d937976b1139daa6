"""A tiny random-weight Flux.2 Klein as a diffusers folder (black-forest-labs/FLUX.2-klein-4B's
layout): the transformer, Flux.2's 32-channel VAE and the Qwen3 text model (28 layers, so
that Klein's hidden states 9, 18 and 27 exist) from the catalog's tiny-flux2 configs after
seeding torch, and the tiny Qwen tokenizer (backend/tiny/zimage.py) with Qwen3's template;
and the same model as ComfyUI's single files (BFL's names), the inverse of diffusers'
convert_flux2_transformer_checkpoint_to_diffusers and of flux2_loading's VAE mapping.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.library.ldm_layout import vae_to_ldm
from dreamwire.backend.tiny.files import save_tensors, state_of
from dreamwire.backend.tiny.flux_files import FP8, METADATA, write_gguf
from dreamwire.backend.tiny.zimage import (
    QWEN25_TEMPLATE,
    text_encoder_tensors,
    write_diffusers_tokenizer,
    write_qwen_tokenizer,
)

ARCH = "tiny-flux2"
SEED = 20260115


def flux2_components() -> dict:
    """transformer, vae, text_encoder (Qwen3ForCausalLM), seeded."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = catalog.config_dir(ARCH)
    torch.manual_seed(SEED + 1)
    transformer = Flux2Transformer2DModel.from_config(
        Flux2Transformer2DModel.load_config(str(folder / "transformer"))
    ).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKLFlux2.from_config(AutoencoderKLFlux2.load_config(str(folder / "vae")))
    # Statistics away from BatchNorm's 0/1 defaults, so that a loader dropping them shows.
    vae.bn.running_mean.copy_(torch.randn_like(vae.bn.running_mean) * 0.5)
    vae.bn.running_var.copy_(torch.rand_like(vae.bn.running_var) + 0.5)
    torch.manual_seed(SEED + 3)
    config = Qwen3Config.from_pretrained(str(folder / "text_encoder"))
    text_encoder = Qwen3ForCausalLM(config).eval()
    return {"transformer": transformer, "vae": vae.eval(), "text_encoder": text_encoder}


def write_flux2_diffusers_folder(parts: dict, folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(catalog.config_dir(ARCH), folder)
    write_diffusers_tokenizer(folder / "tokenizer")
    for name, module in parts.items():
        module.save_pretrained(str(folder / name))
    return folder


# diffusers' name -> BFL's (single-stream and double-stream blocks' inner modules).
_DOUBLE = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.to_out.0.weight": "img_attn.proj.weight",
    "ff.linear_in.weight": "img_mlp.0.weight",
    "ff.linear_out.weight": "img_mlp.2.weight",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "attn.to_add_out.weight": "txt_attn.proj.weight",
    "ff_context.linear_in.weight": "txt_mlp.0.weight",
    "ff_context.linear_out.weight": "txt_mlp.2.weight",
}
_SINGLE = {
    "attn.to_qkv_mlp_proj.weight": "linear1.weight",
    "attn.to_out.weight": "linear2.weight",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}
_TOP = {
    "x_embedder.": "img_in.",
    "context_embedder.": "txt_in.",
    "time_guidance_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
    "time_guidance_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
    "time_guidance_embed.guidance_embedder.linear_1.": "guidance_in.in_layer.",
    "time_guidance_embed.guidance_embedder.linear_2.": "guidance_in.out_layer.",
    "double_stream_modulation_img.linear.": "double_stream_modulation_img.lin.",
    "double_stream_modulation_txt.linear.": "double_stream_modulation_txt.lin.",
    "single_stream_modulation.linear.": "single_stream_modulation.lin.",
    "proj_out.": "final_layer.linear.",
}
_QKV = {"attn.to_": "img_attn.qkv.", "attn.add_": "txt_attn.qkv."}


def bfl_transformer_tensors(transformer) -> dict[str, torch.Tensor]:
    """flux-2-klein-4b.safetensors' names: q/k/v fused per stream, the final modulation
    shift first (diffusers stores scale first)."""
    state = state_of(transformer)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        block, _, inner = key.partition(".")
        if block == "transformer_blocks":
            n, _, inner = inner.partition(".")
            if inner in _DOUBLE:
                out[f"double_blocks.{n}.{_DOUBLE[inner]}"] = value
            elif inner in ("attn.to_q.weight", "attn.add_q_proj.weight"):
                stem = "attn.to_" if inner.startswith("attn.to_") else "attn.add_"
                names = ("q", "k", "v") if stem == "attn.to_" else ("q_proj", "k_proj", "v_proj")
                parts = [state[f"{block}.{n}.{stem}{x}.weight"] for x in names]
                out[f"double_blocks.{n}.{_QKV[stem]}weight"] = torch.cat(parts)
        elif block == "single_transformer_blocks":
            n, _, inner = inner.partition(".")
            out[f"single_blocks.{n}.{_SINGLE[inner]}"] = value
        elif key == "norm_out.linear.weight":
            scale, shift = value.chunk(2)
            out["final_layer.adaLN_modulation.1.weight"] = torch.cat([shift, scale])
        else:
            new = next((new + key[len(old) :] for old, new in _TOP.items() if key.startswith(old)))
            out[new] = value
    return out


def bfl_vae_tensors(vae) -> dict[str, torch.Tensor]:
    """flux2-vae.safetensors' names: LDM's, the quant convolutions inside the encoder and
    decoder, the latents' batch-norm statistics as `bn.*`."""
    state = state_of(vae)
    kept = {k: v for k, v in state.items() if not k.startswith("bn.")}
    ldm = vae_to_ldm(kept, dict(vae.config), prefix="")
    out = {}
    for key, value in ldm.items():
        if key.startswith("quant_conv."):
            key = "encoder." + key
        elif key.startswith("post_quant_conv."):
            key = "decoder." + key
        out[key] = value
    return out | {k: v for k, v in state.items() if k.startswith("bn.")}


def build_comfy_tree(root: Path, parts: dict) -> dict[str, Path]:
    """A ComfyUI install with Klein 4B's files where its template puts them: the transformer
    in bf16's place (the tiny one at full precision, so that it can equal the folder) and
    as fp8 and Q8_0 GGUF (BFL's names, as city96's converter keeps them), Qwen3-4B, Flux.2's
    VAE and Qwen's tokenizer."""
    models = Path(root) / "models"
    transformer = bfl_transformer_tensors(parts["transformer"])
    fp8 = {k: v.to(FP8) if v.ndim == 2 else v for k, v in transformer.items()}
    folder = models / "diffusion_models"
    return {
        "transformer": save_tensors(transformer, folder / "flux-2-klein-4b.safetensors", METADATA),
        "fp8": save_tensors(fp8, folder / "flux-2-klein-4b-fp8.safetensors", METADATA),
        "gguf": write_gguf(transformer, folder / "flux-2-klein-4b-Q8_0.gguf", "flux", "Q8_0"),
        "text_encoder": save_tensors(
            # The causal LM's model: its LM head is tied to the embedding, as in Qwen's file.
            text_encoder_tensors(parts["text_encoder"].model),
            models / "text_encoders" / "qwen_3_4b.safetensors",
        ),
        "vae": save_tensors(
            bfl_vae_tensors(parts["vae"]), models / "vae" / "flux2-vae.safetensors"
        ),
        "tokenizer": write_qwen_tokenizer(
            Path(root) / "comfy" / "text_encoders" / "qwen25_tokenizer", QWEN25_TEMPLATE
        ),
    }
