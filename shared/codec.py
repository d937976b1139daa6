"""Arrays to wire frames and back: raw (zero-copy), PNG and zlib.

Raw frames are the arrays' own memory, so a 2048x2048 RGBA image crosses loopback without
being copied into a bytes object or base64 text. Remote links may be slow, so uint8 images
can go as PNG and other arrays as zlib-deflated bytes instead.

The PNG coder is pure numpy + zlib because this package ships inside Blender and Krita,
where Pillow is not guaranteed. It writes 8-bit (and 16-bit grey/colour) non-interlaced PNG
that any reader accepts, and reads those plus the filter types other encoders use. Decoding
checks the declared size before inflating and never inflates more than that size, so a
"zip bomb" frame costs the receiver nothing. Every filter type is decoded with whole-array
numpy steps (Average and Paeth rows along anti-diagonals, see `_wavefront`), so the cost of a
PNG grows with its rows and columns, not with its bytes times the interpreter's speed.

Shapes are checked before any arithmetic on them (`frame_size`): every dimension a positive
integer no larger than PNG's 2**31 - 1, so a descriptor of absurd dimensions is a
`CodecError`, never a numpy ValueError or an overflow.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Sequence

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count (grey, grey+alpha, RGB, RGBA).
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS = {v: k for k, v in _COLOR_TYPES.items()}


# PNG's own bound on a side, and ours on every dimension of any array frame.
MAX_DIM = 2**31 - 1
# Working memory of one band of rows decoded along anti-diagonals (two skewed copies).
BAND_BYTES = 64 * 2**20
# Steps of a slow decode between two looks at the clock.
_CLOCK_EVERY = 256


class CodecError(ValueError):
    pass


class DecodeTimeout(CodecError):
    """Decoding ran past its deadline (a time budget, not a fault in the data)."""


def frame_size(shape: Sequence[int], dtype, max_bytes: int | None = None) -> int:
    """Bytes of an array of `shape` and `dtype`, after checking every dimension is an int in
    1..MAX_DIM (before any multiplication) and, with `max_bytes`, that the total fits it."""
    dims = list(shape)
    if not dims or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and 0 < d <= MAX_DIM
        for d in dims
    ):
        raise CodecError(f"bad shape {tuple(shape)!r}: dimensions must be integers 1..{MAX_DIM}")
    total = np.dtype(dtype).itemsize
    for d in dims:
        total *= int(d)
    if max_bytes is not None and total > max_bytes:
        raise CodecError(f"an array of shape {tuple(dims)} needs {total} bytes, over {max_bytes}")
    return total


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise DecodeTimeout("decoding took longer than its time budget")


# -- raw ------------------------------------------------------------------------------------


def raw_frame(arr: np.ndarray) -> np.ndarray:
    """The array as a frame: C-contiguous little-endian, copied only if it is not already."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def array_from_frame(data, shape, dtype, writable: bool = False) -> np.ndarray:
    """A view onto the frame's memory (read-only) or, with `writable`, a private copy."""
    nbytes = memoryview(data).nbytes
    if frame_size(shape, dtype, nbytes) != nbytes:
        raise CodecError(
            f"{np.dtype(dtype)} {tuple(shape)} does not fill a frame of {nbytes} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(tuple(int(d) for d in shape))
    return arr.copy() if writable else arr


# -- zlib -----------------------------------------------------------------------------------


def encode_zlib(arr: np.ndarray, level: int = 6) -> bytes:
    return zlib.compress(raw_frame(arr).tobytes(), level)


def decode_zlib(data, shape, dtype, max_bytes: int | None = None) -> np.ndarray:
    expected = frame_size(shape, dtype, max_bytes)
    raw = _inflate(data, expected)
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(int(d) for d in shape)).copy()


def _inflate(data, expected: int) -> bytes:
    d = zlib.decompressobj()
    try:
        # max_length bounds the output: we never hold more than the declared size + 1 byte.
        out = d.decompress(bytes(data), expected + 1)
    except zlib.error as exc:
        raise CodecError(f"corrupt compressed data: {exc}") from None
    if len(out) != expected or d.unconsumed_tail:
        raise CodecError(f"compressed data holds a different size than declared ({expected} bytes)")
    if not d.eof:
        raise CodecError("compressed data is truncated")
    return out


# -- PNG ------------------------------------------------------------------------------------


def png_encodable(arr: np.ndarray) -> bool:
    if arr.dtype not in (np.uint8, np.uint16):
        return False
    channels = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else 0)
    return channels in _COLOR_TYPES and arr.shape[0] > 0 and arr.shape[1] > 0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(arr: np.ndarray, level: int = 6) -> bytes:
    """A PNG of an H x W, H x W x C (C = 1..4) uint8 or uint16 array."""
    arr = np.asarray(arr)
    if not png_encodable(arr):
        raise CodecError(f"cannot write {arr.dtype} {arr.shape} as PNG")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    depth = 8 * arr.dtype.itemsize
    # PNG stores 16-bit samples big-endian; rows become bytes, filters work on bytes.
    rows = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(">"), copy=False))
    rows = rows.view(np.uint8).reshape(h, w * c * arr.dtype.itemsize)
    bpp = c * arr.dtype.itemsize
    filtered = _filter_rows(rows, bpp)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _COLOR_TYPES[c], 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", ihdr),
            _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)),
            _chunk(b"IEND", b""),
        )
    )


def _filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Per row, the cheapest of the None, Sub and Up filters (by sum of absolute bytes as
    signed values, the heuristic libpng suggests); all three decode without a pixel loop."""
    h, n = rows.shape
    none = rows
    sub = rows.copy()
    sub[:, bpp:] = rows[:, bpp:] - rows[:, :-bpp]
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]
    cands = np.stack([none, sub, up])
    cost = np.abs(cands.view(np.int8).astype(np.int32)).sum(axis=2)
    choice = cost.argmin(axis=0)
    out = np.empty((h, n + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = cands[choice, np.arange(h)]
    return out


def read_png_header(data) -> tuple[int, int, int, int]:
    """(width, height, channels, bit depth) from the IHDR chunk, without inflating."""
    data = memoryview(data)
    if len(data) < 33 or bytes(data[:8]) != PNG_SIGNATURE:
        raise CodecError("not a PNG (bad signature)")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise CodecError("PNG does not start with an IHDR chunk")
    w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if not (0 < w <= MAX_DIM and 0 < h <= MAX_DIM):
        raise CodecError(f"PNG of {w}x{h}: sides must be 1..{MAX_DIM}")
    if color not in _CHANNELS:
        raise CodecError(f"unsupported PNG colour type {color} (palette PNGs are not used)")
    if depth not in (8, 16) or comp != 0 or filt != 0 or interlace != 0:
        raise CodecError("unsupported PNG: need 8/16-bit, non-interlaced")
    return w, h, _CHANNELS[color], depth


def check_png(
    data, expect_shape=None, expect_dtype=None, max_pixels: int | None = None
) -> tuple[int, int, int, int]:
    """`read_png_header`, refusing a PNG larger than `max_pixels` or disagreeing with
    `expect_shape`/`expect_dtype` (from a wire header); nothing is inflated."""
    w, h, c, depth = read_png_header(data)
    dtype = np.dtype(np.uint8) if depth == 8 else np.dtype(">u2")
    if max_pixels is not None and w * h > max_pixels:
        raise CodecError(f"PNG of {w}x{h} exceeds {max_pixels} pixels")
    if expect_shape is not None:
        shape = tuple(expect_shape)
        got = (h, w) if len(shape) == 2 else (h, w, c)
        if shape != got or (len(shape) == 2 and c != 1):
            raise CodecError(f"PNG is {h}x{w}x{c}, the header says {shape}")
    if expect_dtype is not None and np.dtype(expect_dtype).itemsize != dtype.itemsize:
        raise CodecError(f"PNG has {depth}-bit samples, the header says {np.dtype(expect_dtype)}")
    return w, h, c, depth


def png_idat(data) -> bytes:
    """The PNG's image data, every chunk's CRC checked, up to IEND (which must be there)."""
    return _collect_idat(memoryview(data))


def decode_png(
    data,
    expect_shape=None,
    expect_dtype=None,
    max_pixels: int | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """Decode a PNG. With `expect_shape`/`expect_dtype` (from a wire header) a PNG that
    disagrees is refused before anything is inflated; past `deadline` (time.monotonic())
    decoding stops with DecodeTimeout."""
    w, h, c, depth = check_png(data, expect_shape, expect_dtype, max_pixels)
    dtype = np.dtype(np.uint8) if depth == 8 else np.dtype(">u2")
    idat = _collect_idat(memoryview(data))
    bpp = c * dtype.itemsize
    stride = w * bpp
    raw = _inflate(idat, h * (stride + 1))
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    pixels = _unfilter(rows, bpp, deadline)
    arr = pixels.view(dtype).reshape(h, w, c)
    arr = arr.astype(dtype.newbyteorder("="), copy=False)
    if expect_shape is not None and len(expect_shape) == 2:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def _collect_idat(data: memoryview) -> bytes:
    pos = 8
    parts: list[bytes] = []
    seen_end = False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise CodecError("PNG chunk runs past the end of the data")
        body = bytes(data[pos + 8 : pos + 8 + length])
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(kind + body) != crc:
            raise CodecError(f"PNG chunk {kind!r} has a bad CRC")
        if kind == b"IDAT":
            parts.append(body)
        elif kind == b"IEND":
            seen_end = True
            break
        pos = end
    if not seen_end or not parts:
        raise CodecError("PNG is truncated (no IDAT or IEND)")
    return b"".join(parts)


def _unfilter(rows: np.ndarray, bpp: int, deadline: float | None = None) -> np.ndarray:
    """The pixel bytes of filtered scanlines (one filter-type byte, then the row).

    None, Sub and Up rows depend on nothing to their left but the raw bytes (Sub is a running
    sum), so each is one numpy step. Average and Paeth depend on the decoded left neighbour:
    a stretch of rows holding them is decoded by `_wavefront`, whatever the other rows are.
    """
    h, n1 = rows.shape
    n = n1 - 1
    types = rows[:, 0]
    bad = np.flatnonzero(types > 4)
    if bad.size:
        raise CodecError(f"unknown PNG filter type {types[bad[0]]} in row {bad[0]}")
    out = np.empty((h, n), np.uint8)
    if h == 0 or n == 0:
        return out
    pixels = n // bpp
    band = _band_rows(pixels, bpp, h)
    slow = np.flatnonzero(types >= 3)
    y = 0
    while y < h:
        check_deadline(deadline)
        prev = out[y - 1] if y else np.zeros(n, np.uint8)
        nxt = slow[np.searchsorted(slow, y)] if slow.size and slow[-1] >= y else h
        if nxt > y:  # rows y..nxt-1 are None, Sub or Up
            end = min(nxt, y + _CLOCK_EVERY)
            for row in range(y, end):
                out[row] = _simple_row(rows[row, 0], rows[row, 1:], prev, bpp)
                prev = out[row]
            y = end
            continue
        end = min(h, y + band)
        out[y:end] = _wavefront(rows[y:end], prev, bpp, deadline)
        y = end
    return out


def _simple_row(ftype: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if ftype == 0:
        return line
    if ftype == 1:  # Sub: a running sum per byte lane, modulo 256
        return _sub_decode(line, bpp)
    return line + prev  # Up


def _sub_decode(line: np.ndarray, bpp: int) -> np.ndarray:
    n = line.size
    pad = (-n) % bpp
    lanes = np.concatenate([line, np.zeros(pad, np.uint8)]).reshape(-1, bpp)
    return np.cumsum(lanes, axis=0, dtype=np.uint8).reshape(-1)[:n]


def _band_rows(pixels: int, bpp: int, h: int) -> int:
    """Rows per wavefront band: as many as fit `BAND_BYTES`, since every band costs as
    many numpy steps as it has diagonals (its width plus its height)."""
    rows = 1
    while rows < h and 2 * (pixels + 2 * rows + 1) * (2 * rows + 1) * bpp <= BAND_BYTES:
        rows *= 2
    return min(rows, h)


def _wavefront(rows: np.ndarray, prev: np.ndarray, bpp: int, deadline: float | None) -> np.ndarray:
    """Decode a band of filtered rows of any filter types, one anti-diagonal at a time.

    Every filter predicts a byte from three decoded bytes of the same lane: left (a), up (b)
    and up-left (c). The pixels of one anti-diagonal (x + y constant) depend only on the two
    diagonals before it, so each diagonal is decoded for all rows at once. The band is kept
    skewed, pixel (row j, x) at [x + j + 1, j], so that a diagonal is one contiguous slice;
    row 0 is the row above the band, and the cells left of x = 0 stay 0 as PNG wants.
    """
    r = rows.shape[0]
    n = rows.shape[1] - 1
    w = n // bpp
    types = rows[:, 0]
    shape = (w + r + 1, r + 1, bpp)
    dec = np.zeros(shape, np.uint8)
    raw = np.zeros(shape, np.uint8)
    sd, sj, sk = dec.strides
    skew = dict(shape=(r + 1, w, bpp), strides=(sd + sj, sd, sk))
    dec_view = np.lib.stride_tricks.as_strided(dec[1:], **skew)
    raw_view = np.lib.stride_tricks.as_strided(raw[1:], **skew)
    dec_view[0] = prev.reshape(w, bpp)
    raw_view[1:] = rows[:, 1:].reshape(r, w, bpp)
    kinds = set(np.unique(types).tolist())
    for d in range(2, w + r + 1):
        if d % _CLOCK_EVERY == 0:
            check_deadline(deadline)
        j0, j1 = max(1, d - w), min(r, d - 1) + 1  # rows of the band on this diagonal
        a = dec[d - 1, j0:j1].astype(np.int16)
        b = dec[d - 1, j0 - 1 : j1 - 1].astype(np.int16)
        if kinds == {1}:
            pred = a
        elif kinds == {2}:
            pred = b
        elif kinds == {3}:
            pred = (a + b) >> 1
        else:
            c = dec[d - 2, j0 - 1 : j1 - 1].astype(np.int16)
            paeth = _paeth(a, b, c) if 4 in kinds else None
            if kinds == {4}:
                pred = paeth
            else:
                zero = np.zeros_like(a)
                avg = (a + b) >> 1 if 3 in kinds else zero
                choice = types[j0 - 1 : j1 - 1, None]
                pred = np.choose(choice, (zero, a, b, avg, zero if paeth is None else paeth))
        np.add(raw[d, j0:j1], pred.astype(np.uint8), out=dec[d, j0:j1])
    return dec_view[1:].reshape(r, n)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG's Paeth predictor: of a, b, c the one nearest a + b - c, ties to a then b."""
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
