"""diffusers alone running a tiny Flux model with a LoRA: its own loader (load_lora_weights,
which also widens the input layer and loads the norms of a Control LoRA) and fuse_lora, on a
copy of the engine's transformer, so the engine's own LoRA code is compared with
diffusers'. The Flux LoRA and Control LoRA tests share it."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

TEXT_PARTS = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")


def run(
    components: dict[str, Any],
    cls_name: str,
    lora,
    multiplier: float,
    prompt: str,
    steps: int,
    seed: int,
    transformer=None,
    **call: Any,
) -> np.ndarray:
    """The first image (uint8) of `cls_name` at 64x64, guidance 3.5; `lora` a path or a
    state dict in diffusers' names (None: none, and `transformer` runs as given); `call`
    the pipeline's other arguments."""
    import diffusers

    from dreamwire.backend.engine import noise

    pipe = getattr(diffusers, cls_name)(
        **{k: components[k] for k in TEXT_PARTS},
        transformer=transformer or copy.deepcopy(components["transformer"]),
        scheduler=type(components["scheduler"]).from_config(components["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(dict(lora) if isinstance(lora, dict) else str(lora))
        pipe.fuse_lora(components=["transformer"], lora_scale=multiplier)
    with torch.inference_mode():
        out = pipe(
            prompt=prompt,
            num_inference_steps=steps,
            guidance_scale=3.5,
            height=64,
            width=64,
            generator=noise.generators([seed]),
            output_type="np",
            **call,
        )
    return (out.images[0] * 255).round().astype(np.uint8)
