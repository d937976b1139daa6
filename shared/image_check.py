"""The check every picture a job carries gets: an H x W x 1|3|4 uint8 array (or, where
allowed, an H x W float32 depth map) with sides from 8 to MAX_SIDE; anything else is
`invalid_image` or `invalid_size` naming the picture. Stdlib and numpy only (ships in the
hosts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DreamwireError, ErrorCode

MAX_SIDE = 8192


def check_image(img: Any, what: str, job_id: str, allow_float: bool = False) -> None:
    if not isinstance(img, np.ndarray):
        raise DreamwireError(ErrorCode.INVALID_IMAGE, f"{what} must be an array", job_id)
    if allow_float and img.dtype == np.float32 and img.ndim == 2:
        return
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE,
            f"{what} must be H x W x 1|3|4 uint8, got {img.dtype} with shape {img.shape}",
            job_id,
        )
    if img.shape[0] < 8 or img.shape[1] < 8 or max(img.shape[:2]) > MAX_SIDE:
        raise DreamwireError(
            ErrorCode.INVALID_SIZE,
            f"{what} size {img.shape[1]}x{img.shape[0]} out of range",
            job_id,
        )
