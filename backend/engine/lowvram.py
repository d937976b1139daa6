"""Low-VRAM mode for one pass: on CUDA model CPU offload (or sequential offload, one layer
at a time, where the memory plan says a model does not fit otherwise), on MPS also sliced
attention.

Model offload (accelerate) keeps only the module that is running on the GPU; together with
the tiled VAE (tiled_vae.py decides that) SD1.5 fits well under 4 GiB and SDXL under 8 GiB
(bench/bench_lowvram.py). Sliced attention is only used where PyTorch's SDPA has no
memory-efficient kernel (MPS runs the math kernel, which holds the whole attention matrix):
on CUDA and the CPU SDPA's flash/memory-efficient kernels never hold it, and diffusers'
sliced processor would put it back, one slice at a time: for SD1.5 at 1024x1024 the UNet's
activations were 0.51 GiB with SDPA and 4.24 GiB sliced. The UNet's attention processors
are put back afterwards, because the cached model is shared with full-memory jobs and with
extensions that install processors of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .device import DeviceInfo


def _attention_modules(pipe) -> list:
    found = []
    for value in pipe.components.values():
        nets = getattr(value, "nets", None)  # MultiControlNetModel
        for m in [*nets] if nets is not None else [value]:
            if hasattr(m, "attn_processors") and hasattr(m, "set_attn_processor"):
                found.append(m)
    return found


def _slice_plain_attention(modules) -> None:
    """What pipe.enable_attention_slicing("auto") does (half the heads per slice), but only
    where the plain processor runs: an extension's processors (IP-Adapter's carry its image
    projections) are left in place instead of being silently replaced."""
    from diffusers.models.attention_processor import (
        Attention,
        AttnProcessor,
        AttnProcessor2_0,
        SlicedAttnProcessor,
    )

    for module in modules:
        for attn in module.modules():
            if isinstance(attn, Attention) and type(attn.processor) in (
                AttnProcessor,
                AttnProcessor2_0,
            ):
                attn.set_processor(SlicedAttnProcessor(max(1, attn.heads // 2)))


def wants_slicing(device_type: str) -> bool:
    return device_type == "mps"


@contextlib.contextmanager
def low_vram(pipe, info: DeviceInfo, enabled: bool, sequential: bool = False) -> Iterator[bool]:
    if not enabled:
        yield False
        return
    # enable_attention_slicing reaches every component that has attention (ControlNets too).
    saved = [(m, m.attn_processors) for m in _attention_modules(pipe)]
    if wants_slicing(info.device.type):
        _slice_plain_attention([m for m, _ in saved])
    offload = info.device.type == "cuda"
    if offload and sequential:
        # One layer at a time: many times slower, but Flux fits 8 GiB (memory_plan.py).
        pipe.enable_sequential_cpu_offload(device=info.device)
    elif offload:
        pipe.enable_model_cpu_offload(device=info.device)
    try:
        yield True
    finally:
        for module, processors in saved:
            module.set_attn_processor(processors)
        if offload:
            # The modules stay in CPU memory; a later full-memory job moves them back.
            pipe.remove_all_hooks()
