"""PNG frames decoded by Pillow's C decoder on the backend.

The hosts' codec (dreamwire.shared.codec) is numpy only, because Pillow is not guaranteed
inside Blender or Krita; it decodes every filter type with whole-array steps, but Pillow is
still several times faster on a large PNG of Average/Paeth rows, and the backend has it.
The same checks come first either way (codec.check_png: the IHDR against the wire header and
the pixel limit, before anything is inflated; codec.png_idat: every chunk's CRC; then the
image data must inflate to exactly the rows the IHDR promises, which Pillow does not check:
it fills missing rows with zeros), so both decoders refuse the same frames and give the same
pixels for the ones they accept.
16-bit colour has no lossless Pillow mode and goes to the numpy decoder.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image

from dreamwire.shared import codec


def decode_png(data, expect_shape=None, expect_dtype=None, deadline=None) -> np.ndarray:
    """codec.decode_png's contract (same errors, same result) for a wire frame: checked
    against the header's shape and dtype, which the wire limits checked already."""
    w, h, c, depth = codec.check_png(data, expect_shape, expect_dtype)
    if depth != 8:
        return codec.decode_png(data, expect_shape, expect_dtype, deadline=deadline)
    _check_inflated_size(codec.png_idat(data), h * (w * c + 1))
    codec.check_deadline(deadline)
    try:
        with warnings.catch_warnings():
            # The size was checked against our own limit above; Pillow's is for callers
            # that did not check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
                img.load()
                arr = np.asarray(img)
    except Image.DecompressionBombError:
        # A backend configured above Pillow's own ceiling: the numpy decoder has none.
        return codec.decode_png(data, expect_shape, expect_dtype, deadline=deadline)
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
        raise codec.CodecError(f"corrupt PNG: {exc}") from None
    if arr.dtype != np.uint8 or arr.size != h * w * c:
        raise codec.CodecError(f"PNG decoded to {arr.dtype} {arr.shape}, not {h}x{w}x{c}")
    arr = arr.reshape(h, w, c)
    if expect_shape is not None and len(expect_shape) == 2:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


_CHUNK = 16 * 2**20  # inflated bytes looked at per step, then dropped


def _check_inflated_size(idat: bytes, expected: int) -> None:
    """Refuse image data that does not inflate to exactly `expected` bytes (every row and
    its filter byte), without holding more than one step of output."""
    d = zlib.decompressobj()
    total = 0
    pending = idat
    try:
        while True:
            out = d.decompress(pending, _CHUNK)
            total += len(out)
            if total > expected:
                break
            pending = d.unconsumed_tail
            if d.eof or not (pending or out):
                break
    except zlib.error as exc:
        raise codec.CodecError(f"corrupt compressed data: {exc}") from None
    if total != expected or not d.eof:
        raise codec.CodecError(
            f"PNG image data holds a different size than its header says ({expected} bytes)"
        )
