"""diffusers' own pipeline over an engine's loaded components: the reference the family
equivalence tests compare the engine's pictures with (same components, seed and threads)."""

from __future__ import annotations

import diffusers
import numpy as np
import torch

from dreamwire.backend.engine import noise


def reference_image(
    engine,
    model: str,
    cls_name: str,
    prompt: str,
    seed: int = 5,
    steps: int = 2,
    extra_components: dict | None = None,
    **kwargs,
) -> np.ndarray:
    """One 8-bit picture from diffusers' `cls_name` built over `model`'s loaded
    vae/text_encoder/tokenizer/transformer and a fresh copy of its scheduler; `kwargs`
    (a component among them, e.g. another tokenizer) go to the constructor or the call,
    `extra_components` (a ControlNet) to the constructor."""
    comps = engine.load(model, "").components
    parts = {
        k: kwargs.pop(k, comps[k]) for k in ("vae", "text_encoder", "tokenizer", "transformer")
    }
    pipe = getattr(diffusers, cls_name)(
        **parts,
        **(extra_components or {}),
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = pipe(
            prompt=prompt,
            num_inference_steps=steps,
            generator=noise.generators([seed]),
            output_type="np",
            height=64,
            width=64,
            **kwargs,
        )
    return (out.images[0] * 255).round().astype(np.uint8)
