"""Low-VRAM mode for one pass: sliced attention, and on CUDA model CPU offload.

Sliced attention trades a little speed for a much smaller attention peak; model offload
(accelerate) keeps only the module that is running on the GPU. Together with the tiled VAE
(tiled_vae.py decides that) SD1.x fits in about 2-4 GB. The UNet's attention processors
are put back afterwards, because the cached model is shared with full-memory jobs and with
extensions that install processors of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .device import DeviceInfo


@contextlib.contextmanager
def low_vram(pipe, info: DeviceInfo, enabled: bool) -> Iterator[bool]:
    if not enabled:
        yield False
        return
    unet = pipe.unet
    saved = unet.attn_processors
    pipe.enable_attention_slicing()
    offload = info.device.type == "cuda"
    if offload:
        pipe.enable_model_cpu_offload(device=info.device)
    try:
        yield True
    finally:
        unet.set_attn_processor(saved)
        if offload:
            # The modules stay in CPU memory; a later full-memory job moves them back.
            pipe.remove_all_hooks()
