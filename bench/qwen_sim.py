"""Qwen-Image's real sizes, counted on the meta device from the catalog's configs (the
MemoryFigures in backend/families/qwen_image.py): parameters per part, the share diffusers'
layerwise casting stores in fp8, the largest linear layer and the largest module, and the
weights' bytes at 1024x1024 in bf16, fp8 and GGUF Q4_0 (4.5 bits a weight).

    python bench/qwen_sim.py
"""

from __future__ import annotations

import json

import torch

from dreamwire import catalog

ARCH = "qwen-image"


def _config(component: str) -> dict:
    return json.loads((catalog.config_dir(ARCH) / component / "config.json").read_text())


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        transformer = QwenImageTransformer2DModel.from_config(_config("transformer"))
        vae = AutoencoderKLQwenImage.from_config(_config("vae"))
        text = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**_config("text_encoder")))
    skip = transformer._skip_layerwise_casting_patterns or ()
    linears = [
        (name, m) for name, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)
    ]
    casted = sum(
        _params(m)
        for name, m in transformer.named_modules()
        if not list(m.children()) and not any(s in name for s in skip)
    )
    largest_layer = max(_params(m) for _, m in linears)
    largest_module = max(_params(m) for m in text.modules() if not list(m.children()))
    t, v, x = _params(transformer), _params(vae), _params(text)
    print(f"transformer {t / 1e6:.1f} M, vae {v / 1e6:.1f} M, text {x / 1e6:.1f} M")
    print(
        f"fp8 share {casted / t:.3f}, largest layer {largest_layer / 1e6:.1f} M, "
        f"largest module {largest_module / 1e6:.1f} M"
    )
    for fmt, bytes_per in (("bf16", 2.0), ("fp8", 1.0), ("Q4_0", 4.5 / 8)):
        gib = (t * bytes_per + (v + x) * 2) / 2**30
        print(f"{fmt}: transformer in {fmt}, the rest bf16: {gib:.1f} GiB of weights")


if __name__ == "__main__":
    main()
