"""What the Qwen tests share: the jobs' common settings, diffusers' own pipeline over the
engine's loaded components (the reference), and the pictures' size for the Edit and
Layered pipelines, which scale every picture to their own area (1 MP, the 640 px bucket):
~50 s for the tiny model on the shared 2-core box, so the tests scale it to the job's
64x64 for the engine's run and the reference alike (both run the same diffusers code on
the same inputs)."""

from __future__ import annotations

import diffusers
import numpy as np
import torch

from dreamwire.backend.engine import noise

PROMPT = "a cat sitting on a red chair"
# Every Qwen test job's settings beside its model, mode and picture.
BASE = dict(negative="blurry", sampler="Euler", steps=2, cfg=2.5, width=64, height=64, seed=5)


def reference(
    engine, model: str, cls_name: str, extra: dict | None = None, **call
) -> list[np.ndarray]:
    """diffusers' `cls_name` over the engine's components of `model` (and `extra` ones: a
    ControlNet), at BASE's settings; its images as uint8 (the batch's, or a layer stack's)."""
    comps = engine.load(model, "").components
    cls = getattr(diffusers, cls_name)
    names = ("vae", "text_encoder", "tokenizer", "processor", "transformer")
    pipe = cls(
        **{k: comps[k] for k in names if comps.get(k) is not None},
        **(extra or {}),
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    call = {
        "prompt": PROMPT,
        "negative_prompt": BASE["negative"],
        "true_cfg_scale": BASE["cfg"],
        "num_inference_steps": BASE["steps"],
        "generator": noise.generators([BASE["seed"]]),
        "output_type": "np",
        **call,
    }
    with torch.inference_mode():
        images = pipe(**call).images
    flat = images[0] if isinstance(images, list) else images  # a layer stack: the first
    assert np.isfinite(np.asarray(flat)).all()
    return [(np.asarray(x) * 255).round().astype(np.uint8) for x in flat]


def scale_pictures(monkeypatch, module) -> None:
    """The pipeline module's picture sizing at the tests' 64x64 area."""
    full = module.calculate_dimensions
    monkeypatch.setattr(module, "calculate_dimensions", lambda _, ratio: full(64 * 64, ratio))


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())
