"""Arrays to wire frames and back: raw (zero-copy), PNG and zlib.

Raw frames are the arrays' own memory, so a 2048x2048 RGBA image crosses loopback without
being copied into a bytes object or base64 text. Remote links may be slow, so uint8 images
can go as PNG and other arrays as zlib-deflated bytes instead.

The PNG coder is pure numpy + zlib because this package ships inside Blender and Krita,
where Pillow is not guaranteed. It writes 8-bit (and 16-bit grey/colour) non-interlaced PNG
that any reader accepts, and reads those plus the filter types other encoders use. Decoding
checks the declared size before inflating and never inflates more than that size, so a
"zip bomb" frame costs the receiver nothing.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count (grey, grey+alpha, RGB, RGBA).
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS = {v: k for k, v in _COLOR_TYPES.items()}


class CodecError(ValueError):
    pass


# -- raw ------------------------------------------------------------------------------------


def raw_frame(arr: np.ndarray) -> np.ndarray:
    """The array as a frame: C-contiguous little-endian, copied only if it is not already."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def array_from_frame(data, shape, dtype, writable: bool = False) -> np.ndarray:
    """A view onto the frame's memory (read-only) or, with `writable`, a private copy."""
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    return arr.copy() if writable else arr


# -- zlib -----------------------------------------------------------------------------------


def encode_zlib(arr: np.ndarray, level: int = 6) -> bytes:
    return zlib.compress(raw_frame(arr).tobytes(), level)


def decode_zlib(data, shape, dtype) -> np.ndarray:
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = _inflate(data, expected)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


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
    if color not in _CHANNELS:
        raise CodecError(f"unsupported PNG colour type {color} (palette PNGs are not used)")
    if depth not in (8, 16) or comp != 0 or filt != 0 or interlace != 0:
        raise CodecError("unsupported PNG: need 8/16-bit, non-interlaced")
    return w, h, _CHANNELS[color], depth


def decode_png(
    data, expect_shape=None, expect_dtype=None, max_pixels: int | None = None
) -> np.ndarray:
    """Decode a PNG. With `expect_shape`/`expect_dtype` (from a wire header) a PNG that
    disagrees is refused before anything is inflated."""
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
    idat = _collect_idat(memoryview(data))
    bpp = c * dtype.itemsize
    stride = w * bpp
    raw = _inflate(idat, h * (stride + 1))
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    pixels = _unfilter(rows, bpp)
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


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    h, n1 = rows.shape
    out = np.zeros((h, n1 - 1), np.uint8)
    prev = np.zeros(n1 - 1, np.uint8)
    for y in range(h):
        ftype = rows[y, 0]
        line = rows[y, 1:]
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:  # Sub: a running sum per byte lane, modulo 256
            cur = _sub_decode(line, bpp)
        elif ftype == 2:  # Up
            cur = line + prev
        elif ftype == 3:  # Average: depends on the decoded left byte, so byte by byte
            cur = _avg_decode(line, prev, bpp)
        elif ftype == 4:
            cur = _paeth_decode(line, prev, bpp)
        else:
            raise CodecError(f"unknown PNG filter type {ftype} in row {y}")
        out[y] = cur
        prev = cur
    return out


def _sub_decode(line: np.ndarray, bpp: int) -> np.ndarray:
    n = line.size
    pad = (-n) % bpp
    lanes = np.concatenate([line, np.zeros(pad, np.uint8)]).reshape(-1, bpp)
    return np.cumsum(lanes, axis=0, dtype=np.uint8).reshape(-1)[:n]


def _avg_decode(line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    cur = line.astype(np.int32).tolist()
    up = prev.astype(np.int32).tolist()
    for i in range(len(cur)):
        left = cur[i - bpp] if i >= bpp else 0
        cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 0xFF
    return np.array(cur, np.uint8)


def _paeth_decode(line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    cur = line.astype(np.int32).tolist()
    up = prev.astype(np.int32).tolist()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        c = up[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.array(cur, np.uint8)
