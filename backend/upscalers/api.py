"""The public entry points: `upscale` an RGB image by a name, and the `names` on offer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from dreamwire.backend.upscalers import tiling
from dreamwire.shared.errors import DreamwireError, ErrorCode

# A1111's resize upscalers (no model): the name picks PIL's filter.
PIXEL_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}

# A1111 lists its Real-ESRGAN models by these names (modules/realesrgan_model.py) whatever
# the file is called in models/RealESRGAN; they name the released files' stems.
ALIASES = {
    "R-ESRGAN 4x+": "RealESRGAN_x4plus",
    "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B",
    "R-ESRGAN 2x+": "RealESRGAN_x2plus",
    "R-ESRGAN General 4xV3": "realesr-general-x4v3",
    "R-ESRGAN General WDN 4xV3": "realesr-general-wdn-x4v3",
    "R-ESRGAN AnimeVideo": "realesr-animevideov3",
}

MAX_PASSES = 3  # A1111's Upscaler.upscale runs a model at most three times


def names(library) -> list[str]:
    """ "Lanczos", "Nearest", then the library's upscaler models (A1111: the file stem),
    then A1111's Real-ESRGAN names for the released files that are present."""
    from dreamwire.backend.library import Kind

    found = list(library.names(Kind.UPSCALER)) if library is not None else []
    stems = {n.rsplit("/", 1)[-1].lower() for n in found}
    aliases = [alias for alias, stem in ALIASES.items() if stem.lower() in stems]
    out = list(PIXEL_UPSCALERS)
    for name in found + aliases:
        if name not in out:
            out.append(name)
    return out


def find(library, name: str):
    """The library entry an upscaler name (file stem, relative path or A1111 alias) means;
    MODEL_NOT_FOUND naming the upscalers on offer when there is none."""
    from dreamwire.backend.library import Kind

    if library is None:
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND, f"upscaler {name!r} needs a model library; none given"
        )
    try:
        return library.find(Kind.UPSCALER, ALIASES.get(name, name))
    except DreamwireError as exc:
        if exc.code != ErrorCode.MODEL_NOT_FOUND:
            raise
        known = ", ".join(names(library))
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            f"no upscaler named {name!r}; available: {known} "
            "(upscaler models go in models/ESRGAN, models/RealESRGAN or models/upscale_models)",
        ) from exc


def check_name(name: str, library) -> None:
    """Fail before any work when `name` is neither a resize nor a model in the library."""
    if name not in PIXEL_UPSCALERS:
        find(library, name)


def target_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return round(height * scale), round(width * scale)


def check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE,
            f"upscale needs an H x W x 3 RGB image, got shape {getattr(image, 'shape', None)}",
        )
    if image.dtype != np.uint8:
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE, f"upscale needs uint8 pixels, got {image.dtype}"
        )
    return image


def resize(image: np.ndarray, height: int, width: int, resample=Image.LANCZOS) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def upscale(
    image: np.ndarray,
    name: str,
    scale: float,
    *,
    library=None,
    device=None,
    dtype=None,
    should_cancel: Callable[[], bool] | None = None,
    tile: int = tiling.TILE,
    overlap: int = tiling.OVERLAP,
    bgr: bool = True,
) -> np.ndarray:
    """H x W x 3 uint8 RGB to round(H*scale) x round(W*scale) x 3 uint8.

    "Lanczos" / "Nearest" resize the pixels; any other name is an upscaler model from
    `library`, run at its native factor (repeated while the image is still smaller than
    the target, at most 3 times, as A1111's Upscaler.upscale loop does) in tiles of `tile`
    px overlapping by `overlap` (A1111's ESRGAN defaults), then resized to the exact size
    with Lanczos. `bgr`: A1111 hands every model upscaler BGR pixels (upscaler_utils flips RGB
    to BGR and back); ComfyUI, chaiNNer and so Krita AI Diffusion hand them RGB: pass
    bgr=False there. `should_cancel` is asked between tiles (CANCELLED when it says so)."""
    image = check_image(image)
    if not (isinstance(scale, int | float) and scale > 0):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"upscale factor must be > 0, got {scale!r}")
    height, width = target_size(image.shape[0], image.shape[1], scale)
    if height < 1 or width < 1:
        raise DreamwireError(ErrorCode.INVALID_SIZE, f"upscale by {scale} leaves an empty image")
    if name in PIXEL_UPSCALERS:
        return resize(image, height, width, PIXEL_UPSCALERS[name])
    entry = find(library, name)
    from dreamwire.backend.upscalers import run

    return run.upscale_with_entry(
        image,
        entry,
        (height, width),
        first_pass=scale == 1,
        device=device,
        dtype=dtype,
        should_cancel=should_cancel,
        tile=tile,
        overlap=overlap,
        bgr=bgr,
    )
