"""Tiny SD3 LoRAs for the tiny SD3 (backend/tiny/sd3.py) in the forms people publish:

- kohya/sd-scripts: `lora_unet_joint_blocks_N_x_block_attn_qkv.lora_down.weight` (one pair
  on the fused qkv), `.alpha`, `lora_te1_`/`lora_te2_` for CLIP-L/CLIP-G;
- diffusers/PEFT: `transformer.transformer_blocks.N.attn.to_q.lora_A.weight` ... and
  `text_encoder.` / `text_encoder_2.` (no alpha: scale 1).

Both are written from the same seeded matrices, so they make the same change to the model:
a fused layer's up matrix is split by rows over diffusers' to_q/to_k/to_v (sharing the
down matrix), and the kohya alpha / rank is folded into the diffusers up matrices.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors

SEED = 20241203
RANK = 4
ALPHA = 2.0  # alpha / rank = 0.5
# (MMDiT layer under joint_blocks.0, diffusers modules its rows go to)
_LAYERS = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block.mlp.fc1": ("ff.net.0.proj",),
    "context_block.attn.proj": ("attn.to_add_out",),
}
_TEXT = "text_model.encoder.layers.0.self_attn.q_proj"


def _pair(gen: torch.Generator, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    down = torch.randn(RANK, cols, generator=gen) * 0.2
    up = torch.randn(rows, RANK, generator=gen) * 0.2
    return down, up


def write_sd3_loras(parts: dict, kohya: Path, peft: Path) -> tuple[Path, Path]:
    """The same tiny LoRA as kohya's file and as diffusers'."""
    gen = torch.Generator().manual_seed(SEED)
    transformer = parts["transformer"]
    modules = dict(transformer.named_modules())
    k_out: dict[str, torch.Tensor] = {}
    p_out: dict[str, torch.Tensor] = {}
    scale = ALPHA / RANK
    for layer, targets in _LAYERS.items():
        rows = [modules[f"transformer_blocks.0.{t}"].weight.shape[0] for t in targets]
        cols = modules[f"transformer_blocks.0.{targets[0]}"].weight.shape[1]
        down, up = _pair(gen, sum(rows), cols)
        stem = "lora_unet_joint_blocks_0_" + layer.replace(".", "_")
        k_out |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up}
        k_out[f"{stem}.alpha"] = torch.tensor(ALPHA)
        for target, piece in zip(targets, up.split(rows), strict=True):
            name = f"transformer.transformer_blocks.0.{target}"
            p_out |= {f"{name}.lora_A.weight": down.clone(), f"{name}.lora_B.weight": piece * scale}
    for kohya_part, peft_part, component in (
        ("lora_te1_", "text_encoder.", "text_encoder"),
        ("lora_te2_", "text_encoder_2.", "text_encoder_2"),
    ):
        width = parts[component].config.hidden_size
        down, up = _pair(gen, width, width)
        stem = kohya_part + _TEXT.replace(".", "_")
        k_out |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up}
        k_out[f"{stem}.alpha"] = torch.tensor(ALPHA)
        p_out |= {
            f"{peft_part}{_TEXT}.lora_A.weight": down,
            f"{peft_part}{_TEXT}.lora_B.weight": up * scale,
        }
    return save_tensors(k_out, kohya), save_tensors(p_out, peft)
