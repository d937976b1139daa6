"""A Flux transformer turned into a Control model for one job, and back, exactly.

As diffusers' FluxLoraLoaderMixin does for a Control LoRA (its
`_maybe_expand_transformer_param_shape_or_error_` and `_load_norm_into_transformer`): the
input layer `x_embedder` widens to the LoRA's input width (the new columns zero, so the
control latents enter only through the LoRA's delta), `config.in_channels` follows (the
FluxControl pipelines size their latents from it), the LoRA's deltas are added to the
weights (lora.py, times the unit's weight as ComfyUI's LoRA strength) and its RMSNorm
scales replace the model's. On exit every one of these is put back: the original input
layer object, the exact weights, the norms and the config.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from . import lora
from .flux_control_files import ControlLora


@contextmanager
def applied(
    components: dict[str, Any], control: ControlLora, weight: float, model_name: str
) -> Iterator[None]:
    transformer = components["transformer"]
    original_input = transformer.x_embedder
    original_channels = transformer.config.in_channels
    params = dict(transformer.named_parameters())
    saved = {name: params[name].detach().clone() for name in control.norms}
    patch = None
    try:
        transformer.x_embedder = _widened(original_input, control.in_channels)
        transformer.register_to_config(in_channels=control.in_channels)
        patch = lora.apply([(control.lora, weight, weight)], components, model_name)
        with torch.no_grad():
            for name, value in control.norms.items():
                params[name].copy_(value.to(params[name].dtype))
        yield
    finally:
        if patch is not None:
            patch.restore()
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
        transformer.x_embedder = original_input
        transformer.register_to_config(in_channels=original_channels)


def _widened(layer: torch.nn.Linear, width: int) -> torch.nn.Linear:
    """`layer` with `width` inputs: its own weights in the first columns, zeros after."""
    wide = torch.nn.Linear(
        width,
        layer.out_features,
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, : layer.in_features] = layer.weight
        if layer.bias is not None:
            wide.bias.copy_(layer.bias)
    return wide.requires_grad_(False)
