"""A tiny random Flux Control LoRA in Black Forest Labs' layout (flux1-canny-dev-lora's keys:
`img_in.lora_A.weight` with twice the latent width, fused `...qkv.lora_A/B`, single blocks'
`linear1`, and the RMSNorm scales `...norm.query_norm.scale` / `key_norm.scale`), plus the
same weights under diffusers' PEFT names, which diffusers' own FluxLoraLoaderMixin loads
(the tests' reference; diffusers' BFL converter assumes the real model's 19/38 blocks).

The diffusers names are written here from an explicit table, not from the loader's key
mapping, so a wrong mapping in the loader shows in the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dreamwire.backend.tiny.files import save_tensors

SEED = 20241300
MLP_RATIO = 4


def _layers(
    config: dict[str, Any],
) -> dict[str, tuple[tuple[int, int], tuple[tuple[str, int], ...]]]:
    """BFL layer -> ((out, in), the diffusers modules its output rows split into)."""
    i = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = i * MLP_RATIO
    wide = 2 * config["in_channels"]  # the latents, then the control image's latents
    out_px = config["patch_size"] ** 2 * (config["out_channels"] or config["in_channels"])
    return {
        "img_in": ((i, wide), (("x_embedder", i),)),
        "double_blocks.0.img_attn.qkv": (
            (3 * i, i),
            tuple((f"transformer_blocks.0.attn.to_{p}", i) for p in "qkv"),
        ),
        "double_blocks.0.txt_attn.proj": ((i, i), (("transformer_blocks.0.attn.to_add_out", i),)),
        "single_blocks.0.linear1": (
            (3 * i + mlp, i),
            tuple((f"single_transformer_blocks.0.attn.to_{p}", i) for p in "qkv")
            + (("single_transformer_blocks.0.proj_mlp", mlp),),
        ),
        "single_blocks.1.linear2": ((i, i + mlp), (("single_transformer_blocks.1.proj_out", i),)),
        "final_layer.linear": ((out_px, i), (("proj_out", out_px),)),
    }


def _norms(config: dict[str, Any]) -> dict[str, str]:
    """BFL RMSNorm scale -> the diffusers parameter it sets."""
    out = {}
    for b in range(config["num_layers"]):
        src, dst = f"double_blocks.{b}.", f"transformer_blocks.{b}.attn."
        out[src + "img_attn.norm.query_norm.scale"] = dst + "norm_q.weight"
        out[src + "img_attn.norm.key_norm.scale"] = dst + "norm_k.weight"
        out[src + "txt_attn.norm.query_norm.scale"] = dst + "norm_added_q.weight"
        out[src + "txt_attn.norm.key_norm.scale"] = dst + "norm_added_k.weight"
    for b in range(config["num_single_layers"]):
        src, dst = f"single_blocks.{b}.norm.", f"single_transformer_blocks.{b}.attn."
        out[src + "query_norm.scale"] = dst + "norm_q.weight"
        out[src + "key_norm.scale"] = dst + "norm_k.weight"
    return out


def control_lora(
    components: dict[str, Any], path: Path, rank: int = 2
) -> tuple[Path, dict[str, torch.Tensor]]:
    """(the BFL-layout file written at `path`, the same weights under diffusers' names with
    the `transformer.` prefix, as `load_lora_weights` takes them)."""
    config = dict(components["transformer"].config)
    gen = torch.Generator().manual_seed(SEED)
    bfl: dict[str, torch.Tensor] = {}
    peft: dict[str, torch.Tensor] = {}
    for name, ((out_f, in_f), targets) in _layers(config).items():
        down = torch.randn(rank, in_f, generator=gen) * 0.1
        up = torch.randn(out_f, rank, generator=gen) * 0.1
        bfl[f"{name}.lora_A.weight"], bfl[f"{name}.lora_B.weight"] = down, up
        rows = up.split([n for _, n in targets], dim=0)
        for (target, _), piece in zip(targets, rows, strict=True):
            peft[f"transformer.{target}.lora_A.weight"] = down.clone()
            peft[f"transformer.{target}.lora_B.weight"] = piece.clone()
    head = config["attention_head_dim"]
    for name, target in _norms(config).items():
        scale = 1.0 + 0.2 * torch.randn(head, generator=gen)
        bfl[name] = scale
        peft[f"transformer.{target}"] = scale.clone()
    return save_tensors(bfl, path), peft
