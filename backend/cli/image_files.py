"""Opening the image files a command line names, refusing what is not a usable image.

An image file is the CLI's own input, so it gets what a peer's message gets: a size check
before any pixel is decoded and a clear error with a stable code, never a traceback. A
small PNG can declare 100000 x 100000 pixels (a decompression bomb: Pillow refuses those
over twice its MAX_IMAGE_PIXELS and only warns below that, after which decoding would take
gigabytes); the declared size is read from the header and checked against the largest
side a job accepts first.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import MAX_SIDE

# What Pillow raises for a damaged or hostile file, besides OSError: SyntaxError and
# struct.error from some format parsers, EOFError from truncated ones.
_BROKEN = (OSError, ValueError, SyntaxError, EOFError, struct.error)
LIMIT = f"; images up to {MAX_SIDE}x{MAX_SIDE} pixels are accepted"


def open_image(path: Path, what: str):
    """The PIL image in `path`, loaded; DreamwireError (invalid_size, invalid_image) when
    it is too large or not a readable image."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if max(w, h) > MAX_SIDE:
                img.close()
                raise DreamwireError(ErrorCode.INVALID_SIZE, f"{what} {path} is {w}x{h}{LIMIT}")
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses the largest in open() itself, before the size can be asked.
        raise DreamwireError(ErrorCode.INVALID_SIZE, f"{what} {path}: {exc}{LIMIT}") from None
    except _BROKEN as exc:
        raise DreamwireError(ErrorCode.INVALID_IMAGE, f"cannot read {what} {path}: {exc}") from None
    except MemoryError:
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE, f"{what} {path} does not fit in memory"
        ) from None
    return img
