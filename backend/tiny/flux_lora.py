"""Tiny random Flux LoRAs in the formats artists download, for a given Flux model.

    kohya(components, path)               sd-scripts: lora_unet_double_blocks_0_img_attn_qkv
                                          .lora_down.weight (+ .alpha), lora_te1_ CLIP-L,
                                          lora_te3_ T5; every BFL layer of the first double
                                          and single block and every layer outside them
    kohya(components, path, comfy=True)   ComfyUI's spelling of the same: diffusion_model.
                                          double_blocks.0.img_attn.qkv.lora_down.weight ...
    peft(components, path)                ai-toolkit / diffusers: transformer.<module>
                                          .lora_A.weight / lora_B.weight (+ .alpha)
    xlabs(components, path)               XLabs: double_blocks.0.processor.qkv_lora1
                                          .down.weight ... (no alpha)

`components` are a Flux pipeline's (transformer, text_encoder CLIP-L, text_encoder_2 T5).
The kohya and XLabs layers are shaped from BFL's architecture (fused qkv: three times the
width; a single block's linear1: qkv and the 4x MLP), written from the transformer's config,
not from the loader's key table, so a wrong mapping in the loader shows in the tests.
Weights are random but seeded: every build writes the same bytes. `build(folder,
components)` writes them all as flux_kohya, flux_comfy, flux_peft, flux_peft_alpha, flux_xlabs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dreamwire.backend.tiny.files import save_tensors

SEED = 20241200
MLP_RATIO = 4  # Flux.1's MLP width over the attention width
TIMESTEP_PROJ = 256  # the sinusoidal timestep/guidance embedding's width


def _pair(gen: torch.Generator, out_f: int, in_f: int, rank: int):
    return torch.randn(rank, in_f, generator=gen) * 0.1, torch.randn(
        out_f, rank, generator=gen
    ) * 0.1


def bfl_layers(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(out, in) of every BFL layer of double block 0, single block 0 and outside the blocks,
    by BFL's '.'-joined name (black-forest-labs/flux, model.py)."""
    i = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = i * MLP_RATIO
    layers = {}
    for stream in ("img", "txt"):
        layers |= {
            f"double_blocks.0.{stream}_attn.qkv": (3 * i, i),
            f"double_blocks.0.{stream}_attn.proj": (i, i),
            f"double_blocks.0.{stream}_mlp.0": (mlp, i),
            f"double_blocks.0.{stream}_mlp.2": (i, mlp),
            f"double_blocks.0.{stream}_mod.lin": (6 * i, i),
        }
    layers |= {
        "single_blocks.0.linear1": (3 * i + mlp, i),
        "single_blocks.0.linear2": (i, i + mlp),
        "single_blocks.0.modulation.lin": (3 * i, i),
        "img_in": (i, config["in_channels"]),
        "txt_in": (i, config["joint_attention_dim"]),
        "time_in.in_layer": (i, TIMESTEP_PROJ),
        "time_in.out_layer": (i, i),
        "vector_in.in_layer": (i, config["pooled_projection_dim"]),
        "vector_in.out_layer": (i, i),
        "final_layer.linear": (
            config["patch_size"] ** 2 * (config["out_channels"] or config["in_channels"]),
            i,
        ),
        "final_layer.adaLN_modulation.1": (2 * i, i),
    }
    if config["guidance_embeds"]:
        layers |= {"guidance_in.in_layer": (i, TIMESTEP_PROJ), "guidance_in.out_layer": (i, i)}
    return layers


def _linear_shape(model: torch.nn.Module, name: str) -> tuple[int, int]:
    weight = dict(model.named_modules())[name].weight
    return int(weight.shape[0]), int(weight.shape[1])


# A few text-encoder layers, by the model's own module names.
CLIP_LAYERS = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1")
T5_LAYERS = ("encoder.block.0.layer.0.SelfAttention.q", "encoder.block.0.layer.1.DenseReluDense.wo")


def clip_file_name(name: str) -> str:
    # Files name CLIP's layers as transformers 4 did, under `text_model.`.
    return name if name.startswith("text_model.") else f"text_model.{name}"


def kohya(
    components: dict[str, Any],
    path: Path,
    rank: int = 4,
    alpha: float = 2.0,
    comfy: bool = False,
) -> Path:
    """sd-scripts' Flux LoRA (or ComfyUI's spelling of it), every layer with an alpha."""
    gen = torch.Generator().manual_seed(SEED + (1 if comfy else 0))
    tensors: dict[str, torch.Tensor] = {}

    def add(key: str, out_f: int, in_f: int, layer_alpha: float) -> None:
        down, up = _pair(gen, out_f, in_f, rank)
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(layer_alpha)

    for name, (out_f, in_f) in bfl_layers(dict(components["transformer"].config)).items():
        key = f"diffusion_model.{name}" if comfy else "lora_unet_" + name.replace(".", "_")
        # diffusers drops the final layer's alpha (lora_conversion_utils, "TODO: alphas"), so
        # those layers carry alpha = rank: scale 1 either way, and the files compare.
        add(key, out_f, in_f, float(rank) if name.startswith("final_layer") else alpha)
    for name in CLIP_LAYERS:
        file_name = clip_file_name(name)
        key = (
            f"text_encoders.clip_l.transformer.{file_name}"
            if comfy
            else "lora_te1_" + file_name.replace(".", "_")
        )
        add(key, *_linear_shape(components["text_encoder"], name), alpha)
    for name in T5_LAYERS:
        key = (
            f"text_encoders.t5xxl.transformer.{name}"
            if comfy
            else "lora_te3_" + name.replace(".", "_")
        )
        add(key, *_linear_shape(components["text_encoder_2"], name), alpha)
    meta = {
        "ss_network_module": "networks.lora_flux",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "flux1",
    }
    return save_tensors(tensors, path, meta)


# ai-toolkit trains these (its default target modules), named the diffusers way.
PEFT_LAYERS = (
    "transformer_blocks.0.attn.to_q",
    "transformer_blocks.0.attn.add_v_proj",
    "transformer_blocks.0.attn.to_out.0",
    "transformer_blocks.0.ff.net.0.proj",
    "transformer_blocks.0.ff_context.net.2",
    "transformer_blocks.0.norm1.linear",
    "single_transformer_blocks.0.attn.to_k",
    "single_transformer_blocks.0.proj_mlp",
    "single_transformer_blocks.0.proj_out",
    "single_transformer_blocks.0.norm.linear",
)


def peft(components: dict[str, Any], path: Path, rank: int = 2, alpha: float | None = None) -> Path:
    """ai-toolkit's / diffusers' save_lora_weights layout: no alpha (scale 1), or with
    `transformer.<module>.alpha` on every layer as some diffusers-format files have (diffusers
    gives a file's one alpha to its layers without one too, Forge scales those by 1: files
    carry an alpha on all layers or none)."""
    gen = torch.Generator().manual_seed(SEED + 2)
    tensors: dict[str, torch.Tensor] = {}
    for name in PEFT_LAYERS:
        down, up = _pair(gen, *_linear_shape(components["transformer"], name), rank)
        tensors[f"transformer.{name}.lora_A.weight"] = down
        tensors[f"transformer.{name}.lora_B.weight"] = up
        if alpha is not None:
            tensors[f"transformer.{name}.alpha"] = torch.tensor(alpha)
    return save_tensors(tensors, path, {"format": "pt"})


def xlabs(components: dict[str, Any], path: Path, rank: int = 4) -> Path:
    """XLabs' attention-processor LoRA: qkv/proj per stream (1 image, 2 text), no alpha."""
    config = dict(components["transformer"].config)
    i = config["num_attention_heads"] * config["attention_head_dim"]
    gen = torch.Generator().manual_seed(SEED + 3)
    shapes = {
        "double_blocks.0.processor.qkv_lora1": (3 * i, i),
        "double_blocks.0.processor.proj_lora1": (i, i),
        "double_blocks.0.processor.qkv_lora2": (3 * i, i),
        "double_blocks.0.processor.proj_lora2": (i, i),
        "single_blocks.0.processor.qkv_lora": (3 * i, i),
        "single_blocks.0.processor.proj_lora": (i, i + i * MLP_RATIO),
    }
    tensors: dict[str, torch.Tensor] = {}
    for name, (out_f, in_f) in shapes.items():
        down, up = _pair(gen, out_f, in_f, rank)
        tensors[f"{name}.down.weight"] = down
        tensors[f"{name}.up.weight"] = up
    return save_tensors(tensors, path)


def build(folder: Path, components: dict[str, Any]) -> dict[str, Path]:
    """Every format above for one Flux model, as models/Lora files named by format."""
    return {
        "flux_kohya": kohya(components, folder / "flux_kohya.safetensors"),
        "flux_comfy": kohya(components, folder / "flux_comfy.safetensors", comfy=True),
        "flux_peft": peft(components, folder / "flux_peft.safetensors"),
        "flux_peft_alpha": peft(components, folder / "flux_peft_alpha.safetensors", alpha=3.0),
        "flux_xlabs": xlabs(components, folder / "flux_xlabs.safetensors"),
    }
