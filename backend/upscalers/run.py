"""A model upscale of one image: A1111's pass loop around the tiled model run."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dreamwire.backend.upscalers import loading, tiling
from dreamwire.backend.upscalers.api import MAX_PASSES, resize


def default_device(device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device, dtype=None) -> torch.dtype:
    """fp16 on a GPU (as A1111 runs ESRGAN), fp32 on the CPU (no fast half convs there)."""
    if device.type == "cpu":
        return torch.float32
    return dtype or torch.float16


@torch.inference_mode()
def model_pass(
    loaded: loading.LoadedUpscaler,
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    bgr: bool,
    should_cancel=None,
) -> np.ndarray:
    """One run of the model at its native factor: uint8 RGB in, uint8 RGB out.

    Colour order: spandrel's models (and ComfyUI, chaiNNer, Krita AI Diffusion) take RGB;
    A1111 flips every model upscaler's input to BGR and the output back (upscaler_utils'
    pil_image_to_torch_bgr for ESRGAN / Real-ESRGAN / DAT / HAT, the same flip in its
    SwinIR script). bgr=True reproduces A1111, bgr=False feeds RGB."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(loaded.device)
    x = x.permute(2, 0, 1).unsqueeze(0).to(loaded.dtype) / 255.0
    if bgr:
        x = x.flip(1)
    out = tiling.run_tiled(loaded.model, x, loaded.scale, tile, overlap, should_cancel)
    if bgr:
        out = out.flip(1)
    out = out.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return out[0].permute(1, 2, 0).cpu().numpy()


def upscale_with_entry(
    image: np.ndarray,
    entry,
    size: tuple[int, int],
    *,
    first_pass: bool = False,
    device=None,
    dtype=None,
    should_cancel=None,
    tile: int = tiling.TILE,
    overlap: int = tiling.OVERLAP,
    bgr: bool = True,
) -> np.ndarray:
    """Run the entry's model until the image covers `size` (H, W), then Lanczos to it.

    A1111 (Upscaler.upscale): stop once the image is large enough, except that a 1x
    request still runs the model once (restoration models); stop when a pass does not
    change the size (1x models)."""
    dev = default_device(device)
    loaded = loading.load(entry, dev, default_dtype(dev, dtype))
    height, width = size
    for i in range(MAX_PASSES):
        big_enough = image.shape[0] >= height and image.shape[1] >= width
        if big_enough and (i > 0 or not first_pass):
            break
        before = image.shape
        image = model_pass(
            loaded, image, tile=tile, overlap=overlap, bgr=bgr, should_cancel=should_cancel
        )
        if image.shape == before:
            break
    return resize(image, height, width, Image.LANCZOS)
