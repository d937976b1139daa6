"""Split into Layers: the active material's image texture split into RGBA layers by a
layered model (Qwen-Image-Layered); the job and the layers' image names, without Blender.

The picture goes in as Edit Texture sends it (core/edit.py: flattened over white, at the
family's size); each layer comes back as an image with alpha named "<name> layer i/N",
1 the bottom, so the artist can stack them (e.g. Mix Shader by alpha) in that order.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.family_support import mode_refusal
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode

from .edit import picture_job
from .job_builder import GenerationSettings


def layer_name(name: str, index: int, count: int) -> str:
    """The image of layer `index` (0 the bottom) of a `count`-layer split of `name`."""
    return f"{name} layer {index + 1}/{count}"


def build_layers_job(
    pixels: np.ndarray, s: GenerationSettings, welcome, count: int = 4, tag: str = ""
) -> Job:
    """A validated layers Job for an H x W x 3|4 uint8 texture (top row first): the
    panel's prompt describes the picture (empty: the model captions it). Refused before
    sending on a model that is not layered, in the words the panel shows."""
    return picture_job(JobMode.LAYERS, pixels, s, welcome, tag, layer_count=int(count))


def stack(result) -> list[tuple[int, np.ndarray]]:
    """The result's layers as (place, H x W x 4 uint8), bottom first; an RGB picture
    (a backend that sent no alpha) made opaque."""
    out = []
    for gen in sorted(result.images, key=lambda g: g.layer):
        img = np.asarray(gen.image)
        if img.shape[2] == 3:
            img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
        out.append((max(gen.layer, 0), img))
    return out


def missing_for_layers(welcome, model: str = "") -> list[str]:
    """Plain sentences about why the backend cannot split with the panel's `model`."""
    if welcome is None:
        return []
    why = mode_refusal("layers", model, welcome)
    return [f"Split into Layers {why}; pick one in Model."] if why else []
