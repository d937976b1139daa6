"""Tiny Flux.2 Klein LoRAs for tiny-flux2's transformer in the forms published for Klein
(conditioning/lora_flux2_keys.py), all holding the same seeded deltas:

  aitk      ai-toolkit: diffusion_model.<BFL name>.lora_A/lora_B.weight, no alpha (scale 1),
            with a shared modulation, img_in and the final adaLN (BFL's shift-first rows)
  diffusers the aitk file in diffusers' Flux.2 names (transformer.<module>.lora_A ...): a
            fused qkv's up split by rows over to_q/k/v under its one down, the final adaLN's
            rows in diffusers' scale-first order
  kohya     sd-scripts/musubi: lora_unet_<BFL name '_'-joined>.lora_down/lora_up + alpha,
            the layers diffusers' kohya converter maps
  comfy     the kohya file as ComfyUI writes it: diffusion_model.<BFL name>.lora_down ...

The BFL layers are shaped from Flux.2's architecture (fused qkv three times the width, a
single block's linear1 qkv plus the SwiGLU's two 3x halves), not from the loader's table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors

RANK = 4
ALPHA = 2.0  # kohya's: the delta is scaled by alpha / rank
SEED = 20260116
MLP_RATIO = 3  # Flux.2's SwiGLU hidden width over the attention width
# BFL name -> the diffusers modules its rows run over (a fused qkv: three).
_QKV = tuple(f"transformer_blocks.0.attn.to_{p}" for p in "qkv")
_ADD_QKV = tuple(f"transformer_blocks.0.attn.add_{p}_proj" for p in "qkv")
KOHYA_LAYERS = {
    "double_blocks.0.img_attn.qkv": _QKV,
    "double_blocks.0.img_attn.proj": ("transformer_blocks.0.attn.to_out.0",),
    "double_blocks.0.img_mlp.0": ("transformer_blocks.0.ff.linear_in",),
    "double_blocks.0.img_mlp.2": ("transformer_blocks.0.ff.linear_out",),
    "double_blocks.0.txt_attn.qkv": _ADD_QKV,
    "double_blocks.0.txt_mlp.2": ("transformer_blocks.0.ff_context.linear_out",),
    "single_blocks.0.linear1": ("single_transformer_blocks.0.attn.to_qkv_mlp_proj",),
    "single_blocks.0.linear2": ("single_transformer_blocks.0.attn.to_out",),
    "img_in": ("x_embedder",),
}
AITK_LAYERS = {
    **KOHYA_LAYERS,
    "double_stream_modulation_img.lin": ("double_stream_modulation_img.linear",),
    "final_layer.adaLN_modulation.1": ("norm_out.linear",),
}
_SWAPPED = "final_layer.adaLN_modulation.1"


def bfl_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(out, in) of each BFL layer written, from the transformer's config."""
    i = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = int(i * MLP_RATIO)
    return {
        "double_blocks.0.img_attn.qkv": (3 * i, i),
        "double_blocks.0.img_attn.proj": (i, i),
        "double_blocks.0.img_mlp.0": (2 * mlp, i),
        "double_blocks.0.img_mlp.2": (i, mlp),
        "double_blocks.0.txt_attn.qkv": (3 * i, i),
        "double_blocks.0.txt_mlp.2": (i, mlp),
        "single_blocks.0.linear1": (3 * i + 2 * mlp, i),
        "single_blocks.0.linear2": (i, i + mlp),
        "img_in": (i, config["in_channels"]),
        "double_stream_modulation_img.lin": (6 * i, i),
        "final_layer.adaLN_modulation.1": (2 * i, i),
    }


def _pairs(config: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(SEED)
    return {
        name: (
            torch.randn(RANK, in_f, generator=g) * 0.1,
            torch.randn(out_f, RANK, generator=g) * 0.1,
        )
        for name, (out_f, in_f) in bfl_shapes(config).items()
    }


def _diffusers_tensors(pairs) -> dict[str, torch.Tensor]:
    out = {}
    for bfl, targets in AITK_LAYERS.items():
        down, up = pairs[bfl]
        if bfl == _SWAPPED:
            up = torch.cat(up.chunk(2)[::-1])
        for target, rows in zip(targets, up.chunk(len(targets)), strict=True):
            out[f"transformer.{target}.lora_A.weight"] = down.clone()
            out[f"transformer.{target}.lora_B.weight"] = rows.contiguous()
    return out


def write_flux2_loras(config: dict, folder: Path) -> dict[str, Path]:
    """The four files (module docstring) in `folder`, by form."""
    pairs = _pairs(config)
    paths = {n: folder / f"klein_{n}.safetensors" for n in ("aitk", "diffusers", "kohya", "comfy")}
    aitk = {}
    for bfl in AITK_LAYERS:
        down, up = pairs[bfl]
        aitk[f"diffusion_model.{bfl}.lora_A.weight"] = down.clone()
        aitk[f"diffusion_model.{bfl}.lora_B.weight"] = up.clone()
    save_tensors(aitk, paths["aitk"])
    save_tensors(_diffusers_tensors(pairs), paths["diffusers"])
    for form, (prefix, dotted) in {
        "kohya": ("lora_unet_", False),
        "comfy": ("diffusion_model.", True),
    }.items():
        tensors = {}
        for bfl in KOHYA_LAYERS:
            stem = prefix + (bfl if dotted else bfl.replace(".", "_"))
            down, up = pairs[bfl]
            tensors[f"{stem}.lora_down.weight"] = down.clone()
            tensors[f"{stem}.lora_up.weight"] = up.clone()
            tensors[f"{stem}.alpha"] = torch.tensor(ALPHA)
        save_tensors(tensors, paths[form])
    return paths
