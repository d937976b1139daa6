"""Tiny Z-Image LoRAs for tiny-zimage's transformer in the forms published for Z-Image Turbo
(conditioning/lora_zimage_keys.py): ai-toolkit's diffusers names, kohya/musubi's
'_'-joined names with alpha, and ComfyUI's original names with the fused qkv. The
ComfyUI file carries exactly the ai-toolkit file's deltas (its qkv's rows are the to_q,
to_k and to_v ups over their shared down), so both must patch the same weights."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors

RANK = 4
ALPHA = 2.0  # kohya's: the delta is scaled by alpha / rank
SEED = 20251207
# diffusers names of the layers trained (every kind of layer, in each kind of block).
LAYERS = (
    "layers.0.attention.to_out.0",
    "layers.1.feed_forward.w1",
    "layers.1.adaLN_modulation.0",
    "noise_refiner.0.attention.to_out.0",
    "context_refiner.0.feed_forward.w2",
)
QKV_BLOCK = "layers.0.attention"


def _pairs(transformer) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(down, up) per diffusers layer name, seeded; to_q/k/v share one down."""
    modules = dict(transformer.named_modules())
    g = torch.Generator().manual_seed(SEED)
    pairs = {}
    for name in LAYERS:
        out_f, in_f = modules[name].weight.shape
        pairs[name] = (
            torch.randn(RANK, in_f, generator=g) * 0.1,
            torch.randn(out_f, RANK, generator=g) * 0.1,
        )
    down = torch.randn(RANK, modules[f"{QKV_BLOCK}.to_q"].weight.shape[1], generator=g) * 0.1
    for p in ("q", "k", "v"):
        out_f = modules[f"{QKV_BLOCK}.to_{p}"].weight.shape[0]
        pairs[f"{QKV_BLOCK}.to_{p}"] = (down, torch.randn(out_f, RANK, generator=g) * 0.1)
    return pairs


def write_zimage_loras(transformer, aitk: Path, kohya: Path, comfy: Path) -> None:
    pairs = _pairs(transformer)
    save_tensors(
        {
            f"diffusion_model.{n}.{slot}.weight": t.clone()
            for n, (down, up) in pairs.items()
            for slot, t in (("lora_A", down), ("lora_B", up))
        },
        aitk,
    )
    kohya_tensors = {}
    for n, (down, up) in pairs.items():
        stem = "lora_unet_" + n.replace(".", "_")
        kohya_tensors[f"{stem}.lora_down.weight"] = down.clone()
        kohya_tensors[f"{stem}.lora_up.weight"] = up.contiguous()
        kohya_tensors[f"{stem}.alpha"] = torch.tensor(ALPHA)
    save_tensors(kohya_tensors, kohya)
    original = {"to_out.0": "out"}
    comfy_tensors = {}
    for n, (down, up) in pairs.items():
        if n.startswith(f"{QKV_BLOCK}.to_") and n[-1] in "qkv":
            continue
        for new, old in original.items():
            n = n.replace(new, old)
        comfy_tensors[f"diffusion_model.{n}.lora_down.weight"] = down.contiguous()
        comfy_tensors[f"diffusion_model.{n}.lora_up.weight"] = up.contiguous()
    qkv_up = torch.cat([pairs[f"{QKV_BLOCK}.to_{p}"][1] for p in "qkv"])
    comfy_tensors[f"diffusion_model.{QKV_BLOCK}.qkv.lora_down.weight"] = pairs[f"{QKV_BLOCK}.to_q"][
        0
    ].contiguous()
    comfy_tensors[f"diffusion_model.{QKV_BLOCK}.qkv.lora_up.weight"] = qkv_up.contiguous()
    save_tensors(comfy_tensors, comfy)
