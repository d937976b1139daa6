"""Tiny random-weight IP-Adapters and CLIP vision encoders, in the files artists download.

    models/clip_vision/tiny-clip-vit-h.safetensors      CLIPVisionModelWithProjection,
                                                        transformers keys (ComfyUI layout),
                                                        64 wide, projection 48: the "ViT-H"
    models/clip_vision/tiny-clip-vit-bigg.safetensors   128 wide, projection 64: the "ViT-bigG"
    models/ControlNet/ip-adapter_sd15.safetensors       plain, tiny-sd1 (A1111 keeps them here)
    models/ControlNet/ip-adapter-plus_sd15.safetensors  plus (resampler), tiny-sd1
    models/ipadapter/ip-adapter_sdxl.safetensors        plain, tiny-sdxl (ComfyUI's folder),
                                                        reads the "ViT-bigG" embedding

The single-file layout is h94/IP-Adapter's: ``image_proj.*`` (plain: proj + norm; plus: the
perceiver resampler in its original key names) and ``ip_adapter.<1, 3, 5...>.to_k_ip /
to_v_ip.weight`` for the UNet's cross-attentions in attn_processors order. As with real
adapters, sd15 and plus read the ViT-H-like encoder (its embedding, its hidden states) and
sdxl the bigG-like one, so pairing by shape is exercised. Weights are seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors, unet_config

SEED = 20251126
TOKENS = 4  # plain adapters: diffusers' loader assumes 4
ENCODERS = {  # name: (hidden, heads, projection)
    "tiny-clip-vit-h": (64, 1, 48),
    "tiny-clip-vit-bigg": (128, 2, 64),
}


def encoder(name: str):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    hidden, heads, projection = ENCODERS[name]
    torch.manual_seed(SEED + hidden)
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        projection_dim=projection,
        num_hidden_layers=2,
        num_attention_heads=heads,
        image_size=32,
        patch_size=8,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPVisionModelWithProjection(config).eval()


def _cross_layers(arch: str) -> list[int]:
    """The hidden width of each cross-attention, in the UNet's attn_processors order (as
    diffusers' loader numbers them)."""
    from diffusers import UNet2DConditionModel

    config = unet_config(arch)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    widths = []
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attn = unet.get_submodule(name.removesuffix(".processor"))
            widths.append(attn.to_q.weight.shape[0])
    return widths


def _randn(gen, *shape, std=1.0):
    return torch.randn(*shape, generator=gen) * std


def _ip_layers(gen, arch: str) -> dict[str, torch.Tensor]:
    cross = unet_config(arch)["cross_attention_dim"]
    out = {}
    for i, width in enumerate(_cross_layers(arch)):
        for part in ("to_k_ip", "to_v_ip"):
            # Larger than the text projections: the tiny UNet must show the reference.
            out[f"ip_adapter.{2 * i + 1}.{part}.weight"] = _randn(gen, width, cross, std=0.5)
    return out


def plain(arch: str, clip_dim: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    cross = unet_config(arch)["cross_attention_dim"]
    state = {
        "image_proj.proj.weight": _randn(gen, TOKENS * cross, clip_dim, std=clip_dim**-0.5),
        "image_proj.proj.bias": _randn(gen, TOKENS * cross, std=0.1),
        "image_proj.norm.weight": 1.0 + _randn(gen, cross, std=0.1),
        "image_proj.norm.bias": _randn(gen, cross, std=0.1),
    }
    state.update(_ip_layers(gen, arch))
    return state


def plus(arch: str, embed_dims: int, seed: int, queries: int = 4) -> dict[str, torch.Tensor]:
    """h94's Resampler keys (depth 4, 64-wide heads, as diffusers' converter reads them)."""
    gen = torch.Generator().manual_seed(seed)
    cross = unet_config(arch)["cross_attention_dim"]
    hidden, inner = 64, 64
    p = "image_proj."
    state = {
        p + "latents": _randn(gen, 1, queries, hidden, std=hidden**-0.5),
        p + "proj_in.weight": _randn(gen, hidden, embed_dims, std=embed_dims**-0.5),
        p + "proj_in.bias": torch.zeros(hidden),
        p + "proj_out.weight": _randn(gen, cross, hidden, std=hidden**-0.5),
        p + "proj_out.bias": torch.zeros(cross),
        p + "norm_out.weight": torch.ones(cross),
        p + "norm_out.bias": torch.zeros(cross),
    }
    for i in range(4):
        b = f"{p}layers.{i}."
        state.update(
            {
                b + "0.norm1.weight": torch.ones(hidden),
                b + "0.norm1.bias": torch.zeros(hidden),
                b + "0.norm2.weight": torch.ones(hidden),
                b + "0.norm2.bias": torch.zeros(hidden),
                b + "0.to_q.weight": _randn(gen, inner, hidden, std=hidden**-0.5),
                b + "0.to_kv.weight": _randn(gen, 2 * inner, hidden, std=hidden**-0.5),
                b + "0.to_out.weight": _randn(gen, hidden, inner, std=inner**-0.5),
                b + "1.0.weight": torch.ones(hidden),
                b + "1.0.bias": torch.zeros(hidden),
                b + "1.1.weight": _randn(gen, 4 * hidden, hidden, std=hidden**-0.5),
                b + "1.3.weight": _randn(gen, hidden, 4 * hidden, std=(4 * hidden) ** -0.5),
            }
        )
    state.update(_ip_layers(gen, arch))
    return state


def build(models: Path) -> dict[str, Path]:
    """Write the tiny encoders and adapters under a models folder; returns name -> path."""
    models = Path(models)
    written: dict[str, Path] = {}
    for name in ENCODERS:
        written[name] = save_tensors(
            encoder(name).state_dict(), models / "clip_vision" / f"{name}.safetensors"
        )
    h_hidden, _, h_proj = ENCODERS["tiny-clip-vit-h"]
    g_proj = ENCODERS["tiny-clip-vit-bigg"][2]
    cn = models / "ControlNet"
    written["ip-adapter_sd15"] = save_tensors(
        plain("tiny-sd1", h_proj, SEED + 1), cn / "ip-adapter_sd15.safetensors"
    )
    written["ip-adapter-plus_sd15"] = save_tensors(
        plus("tiny-sd1", h_hidden, SEED + 2), cn / "ip-adapter-plus_sd15.safetensors"
    )
    written["ip-adapter_sdxl"] = save_tensors(
        plain("tiny-sdxl", g_proj, SEED + 3), models / "ipadapter" / "ip-adapter_sdxl.safetensors"
    )
    return written
