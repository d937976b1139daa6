"""The public entry points: `upscale` an RGB image by a name, and the `names` on offer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode

# A1111's resize upscalers (no model): the name picks PIL's filter.
PIXEL_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}


def names(library) -> list[str]:
    """ "Lanczos", "Nearest", then the library's upscaler models (A1111: the file stem)."""
    from dreamwire.backend.library import Kind

    found = list(library.names(Kind.UPSCALER)) if library is not None else []
    return list(PIXEL_UPSCALERS) + [n for n in found if n not in PIXEL_UPSCALERS]


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
) -> np.ndarray:
    """H x W x 3 uint8 RGB to round(H*scale) x round(W*scale) x 3 uint8.

    "Lanczos" / "Nearest" resize the pixels; any other name is an upscaler model from
    `library`, run at its native factor (repeated while the image is still smaller than
    the target, as A1111's upscale loop does) and resized to the exact size with Lanczos."""
    image = check_image(image)
    if not (isinstance(scale, int | float) and scale > 0):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"upscale factor must be > 0, got {scale!r}")
    height, width = target_size(image.shape[0], image.shape[1], scale)
    if height < 1 or width < 1:
        raise DreamwireError(ErrorCode.INVALID_SIZE, f"upscale by {scale} leaves an empty image")
    if name in PIXEL_UPSCALERS:
        return resize(image, height, width, PIXEL_UPSCALERS[name])
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        f"upscaler model {name!r}: model upscalers are not available yet",
    )
