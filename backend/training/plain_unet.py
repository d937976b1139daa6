"""The UNet as training needs it: on a GPU the engine's fast path may have fused the cached
UNet's q/k/v into one projection (FusedAttnProcessor2_0 reads `to_qkv`, never the `to_q`,
`to_k`, `to_v` the LoRA layers wrap) and compiled its forward into CUDA graphs. Trained
like that, the LoRA on those projections would get no gradient and the steps would replay
graphs made without it. So for the run the attention goes back to the plain processor
(the parts are views of the fused weight: the same numbers) and the forward to eager, and
both are given back afterwards, as the next generation expects them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from dreamwire.backend.engine.fastpath import compiled


@contextlib.contextmanager
def unfused_eager(unet: nn.Module) -> Iterator[int]:
    """Yields how many attention modules were running fused."""
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    swapped = []
    for module in unet.modules():
        processor = getattr(module, "processor", None)
        if isinstance(processor, FusedAttnProcessor2_0):
            swapped.append((module, processor))
            module.set_processor(AttnProcessor2_0())
    wrapper = compiled(unet)
    was_active = wrapper.active if wrapper is not None else False
    if wrapper is not None:
        wrapper.active = False
    try:
        yield len(swapped)
    finally:
        if wrapper is not None:
            wrapper.active = was_active
        for module, processor in swapped:
            module.set_processor(processor)
