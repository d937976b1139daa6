"""Regional prompts from layers, as Krita AI Diffusion links regions to layers.

A visible layer or group named ``region: a red barn`` is a region: the text after the
prefix is its prompt, and the layer's alpha over the job's area is its mask (the docker's
prompt is the background covering everything). What the layer shows counts, so soft
brushes make soft regions; a layer at 0 % opacity marks an area without showing in the
picture (its own pixels keep their alpha). A hidden layer is no region, so hiding is how
a region is switched off. A layer whose pixels are all transparent over the job's area is
left out: it would change nothing.

The backend applies the Latent Couple maths (backend/engine/regions.py): inside a region
its prompt takes over from the background in proportion to the alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamwire.shared.job import MAX_REGIONS, Region

from .regions import PlanError

PREFIX = "region:"


@dataclass(frozen=True)
class LayerInfo:
    """What the host tells about a layer: its id, name, and whether it and every group
    above it are visible."""

    node_id: str
    name: str
    visible: bool


@dataclass(frozen=True)
class RegionLayer:
    node_id: str
    prompt: str


def region_prompt(name: str) -> str | None:
    """The prompt of a layer named ``region: ...`` (any case), None for other layers."""
    stripped = name.strip()
    if not stripped.lower().startswith(PREFIX):
        return None
    return stripped[len(PREFIX) :].strip()


def region_layer_name(prompt: str = "") -> str:
    """The name of a new region layer: ``region: <prompt>`` on one line, or the bare
    prefix (``region: ``) for the artist to complete in the layer's name."""
    text = " ".join(prompt.split())
    if region_prompt(text) is not None:  # pasted with its prefix already
        text = region_prompt(text) or ""
    return f"{PREFIX} {text}" if text else f"{PREFIX} "


def region_layers(layers: list[LayerInfo]) -> list[RegionLayer]:
    """The visible region layers, in the order given (Krita's: bottom to top)."""
    out = []
    for layer in layers:
        prompt = region_prompt(layer.name)
        if prompt is None or not layer.visible:
            continue
        if not prompt:
            raise PlanError(
                f"The layer {layer.name!r} has no prompt: name it 'region: what goes there'."
            )
        out.append(RegionLayer(layer.node_id, prompt))
    return out


def build_regions(found: list[RegionLayer], pixels: dict[str, np.ndarray]) -> list[Region]:
    """Regions from the layers' RGBA pixels over the job's area (alpha = mask)."""
    out = []
    for layer in found:
        alpha = np.ascontiguousarray(pixels[layer.node_id][..., 3])
        if alpha.any():
            out.append(Region(prompt=layer.prompt, mask=alpha))
    if len(out) > MAX_REGIONS:
        raise PlanError(f"{len(out)} region layers: at most {MAX_REGIONS} are supported.")
    return out
