"""The pure numpy PNG/zlib coder against Pillow, the reference PNG implementation here, and
the backend's Pillow decoder against the numpy one."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.server import pngread
from dreamwire.shared import codec


@pytest.mark.parametrize("shape", [(37, 53, 4), (64, 64, 3), (19, 7), (5, 9, 1), (16, 16, 2)])
def test_our_png_reads_back_identically_in_pillow(shape):
    rng = np.random.default_rng(1)
    # Mix smooth and noisy content so every row filter gets chosen somewhere.
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    arr[: shape[0] // 2] = np.linspace(0, 255, shape[1], dtype=np.uint8).reshape(
        1, shape[1], *([1] * (len(shape) - 2))
    )
    png = codec.encode_png(arr)
    got = np.asarray(Image.open(io.BytesIO(png)))
    want = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(codec.decode_png(png, expect_shape=shape), arr)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_we_read_pillows_png_with_all_its_filters(mode):
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (40, 33, 4), dtype=np.uint8)
    base[:20] = np.cumsum(base[:20], axis=1, dtype=np.uint8)  # gradients invite Paeth/Average
    img = Image.fromarray(base, "RGBA").convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    np.testing.assert_array_equal(
        codec.decode_png(buf.getvalue()), np.asarray(img).reshape(40, 33, -1)
    )


def test_sixteen_bit_png_round_trip_and_pillow_agrees():
    arr = (np.arange(30 * 20, dtype=np.uint16) * 97).reshape(30, 20)
    png = codec.encode_png(arr)
    np.testing.assert_array_equal(codec.decode_png(png, (30, 20), np.uint16), arr)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))).astype(np.uint16), arr)


def test_png_disagreeing_with_declared_shape_is_refused_before_inflating():
    png = codec.encode_png(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(codec.CodecError, match="header says"):
        codec.decode_png(png, expect_shape=(100000, 100000, 3))


def test_png_bomb_is_not_inflated_past_its_declared_size():
    # An IDAT inflating to 100 MB inside a PNG that claims 4x4: refused, never held.
    arr = np.zeros((4, 4, 3), np.uint8)
    png = bytearray(codec.encode_png(arr))
    bomb = codec._chunk(b"IDAT", __import__("zlib").compress(b"\0" * 100_000_000, 9))
    start = png.index(b"IDAT") - 4
    end = png.index(b"IEND") - 4
    evil = bytes(png[:start]) + bomb + bytes(png[end:])
    with pytest.raises(codec.CodecError, match="different size"):
        codec.decode_png(evil)


def test_corrupt_png_crc_is_refused():
    png = bytearray(codec.encode_png(np.ones((8, 8, 3), np.uint8)))
    png[40] ^= 0xFF
    with pytest.raises(codec.CodecError):
        codec.decode_png(bytes(png))


def test_zlib_float_round_trip_and_size_check():
    depth = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    data = codec.encode_zlib(depth)
    np.testing.assert_array_equal(codec.decode_zlib(data, (48, 64), np.float32), depth)
    with pytest.raises(codec.CodecError):
        codec.decode_zlib(data, (48, 63), np.float32)


def test_raw_frame_is_zero_copy_for_contiguous_arrays():
    arr = np.zeros((8, 8, 4), np.uint8)
    assert codec.raw_frame(arr) is arr or np.shares_memory(codec.raw_frame(arr), arr)
    view = codec.array_from_frame(memoryview(arr), (8, 8, 4), np.uint8)
    assert np.shares_memory(view, arr)


# -- every filter type, decoded with whole-array steps -------------------------------------


def _reference_unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """PNG's filters byte by byte, as the specification writes them (the test oracle)."""
    out = np.zeros((rows.shape[0], rows.shape[1] - 1), np.int64)
    for y in range(rows.shape[0]):
        for i in range(out.shape[1]):
            a = int(out[y, i - bpp]) if i >= bpp else 0
            b = int(out[y - 1, i]) if y else 0
            c = int(out[y - 1, i - bpp]) if y and i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            pred = (0, a, b, (a + b) // 2, paeth)[rows[y, 0]]
            out[y, i] = (int(rows[y, i + 1]) + pred) % 256
    return out.astype(np.uint8)


def _png_of_rows(rows: np.ndarray, w: int, h: int, channels: int, depth: int = 8) -> bytes:
    """A PNG whose IDAT holds exactly these filtered scanlines (type byte + row each)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    idat = zlib.compress(rows.tobytes(), 9)
    return codec.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _crafted_rows(rng, h: int, w: int, bpp: int, types) -> np.ndarray:
    rows = rng.integers(0, 256, (h, w * bpp + 1), dtype=np.uint8)
    rows[:, 0] = types
    return rows


@pytest.mark.parametrize(
    "channels,depth,types",
    [
        (1, 8, "all"),
        (3, 8, "all"),
        (4, 8, "paeth"),
        (2, 8, "average"),
        (4, 8, "all"),
        (1, 16, "all"),
        (3, 16, "paeth"),
    ],
)
def test_crafted_rows_of_every_filter_type_decode_exactly(channels, depth, types, monkeypatch):
    rng = np.random.default_rng(channels * depth)
    h, w = 23, 17
    bpp = channels * depth // 8
    row_types = {
        "all": np.arange(h) % 5,  # None, Sub, Up, Average, Paeth in turn
        "paeth": 4,
        "average": 3,
    }[types]
    rows = _crafted_rows(rng, h, w, bpp, row_types)
    png = _png_of_rows(rows, w, h, channels, depth)
    want = _reference_unfilter(rows, bpp)
    dtype = np.dtype(np.uint8) if depth == 8 else np.dtype(">u2")
    want = want.view(dtype).reshape(h, w, channels).astype(dtype.newbyteorder("="))
    # Small bands too, so rows cross band boundaries and bands start on any filter type.
    for band_bytes in (64 * 2**20, 2000, 1):
        monkeypatch.setattr(codec, "BAND_BYTES", band_bytes)
        np.testing.assert_array_equal(codec.decode_png(png), want)
    if depth == 8:
        got = np.asarray(Image.open(io.BytesIO(png))).reshape(h, w, channels)
        np.testing.assert_array_equal(got, want)  # the oracle agrees with Pillow
        np.testing.assert_array_equal(pngread.decode_png(png), want)


def test_pillow_adaptive_filters_decode_identically():
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:96, 0:160]
    base = np.stack([(x * 3 + y) % 256, (x * y) % 256, (y * 5) % 256], axis=2).astype(np.uint8)
    base[48:] = rng.integers(0, 256, (48, 160, 3), dtype=np.uint8)  # noise: other filters
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG")
    png = buf.getvalue()
    # The test means something only if Pillow chose predictive filters somewhere.
    w, h, c, _ = codec.read_png_header(png)
    types = set(zlib.decompress(codec.png_idat(png))[:: w * c + 1])
    assert {3, 4} & types and len(types) >= 2, types
    np.testing.assert_array_equal(codec.decode_png(png), base)
    np.testing.assert_array_equal(pngread.decode_png(png, (96, 160, 3), np.uint8), base)


def test_large_paeth_png_decodes_in_seconds_not_minutes():
    # 4096 x 4096 grey, every row Paeth: a byte-by-byte decoder took ~15 s (64 s at 8192^2).
    rows = np.zeros((4096, 4096 + 1), np.uint8)
    rows[:, 0] = 4
    rows[::5, 1::7] = 9
    png = _png_of_rows(rows, 4096, 4096, 1)
    start = time.perf_counter()
    arr = codec.decode_png(png, (4096, 4096), np.uint8)
    took = time.perf_counter() - start
    assert arr.shape == (4096, 4096) and arr.any()
    assert took < 6.0, took
    np.testing.assert_array_equal(pngread.decode_png(png, (4096, 4096), np.uint8), arr)


def test_decoding_stops_at_its_deadline():
    rows = np.zeros((512, 512 + 1), np.uint8)
    rows[:, 0] = 4
    png = _png_of_rows(rows, 512, 512, 1)
    with pytest.raises(codec.DecodeTimeout):
        codec.decode_png(png, deadline=time.monotonic() - 1)
    with pytest.raises(codec.DecodeTimeout):
        pngread.decode_png(png, deadline=time.monotonic() - 1)


@pytest.mark.parametrize("decode", [codec.decode_png, pngread.decode_png])
def test_both_png_decoders_refuse_the_same_broken_frames(decode):
    png = codec.encode_png(
        np.arange(64 * 48 * 3, dtype=np.uint32).astype(np.uint8).reshape(48, 64, 3)
    )
    bad_crc = bytearray(png)
    bad_crc[-20] ^= 0xFF  # inside the IDAT data: the chunk's CRC no longer matches
    idat = codec.png_idat(png)
    short = _png_of_rows(
        np.frombuffer(zlib.decompress(idat), np.uint8)[: 10 * (64 * 3 + 1)].reshape(10, -1),
        64,
        48,
        3,
    )
    bad_filter = _png_of_rows(_crafted_rows(np.random.default_rng(0), 4, 4, 3, 7), 4, 4, 3)
    for data in (bytes(bad_crc), short, bad_filter, png[:40], b"not a png" * 10):
        with pytest.raises(codec.CodecError):
            decode(data)
    with pytest.raises(codec.CodecError, match="header says"):
        decode(png, (48, 65, 3), np.uint8)


# -- array descriptors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(0, 10**30), (10**30, 0), (2**62, 0, 3), (0,), (-1, -4), (3, True), (2.0, 2), (), (2**40, 1)],
)
def test_absurd_shapes_are_codec_errors_not_numpy_errors(shape):
    with pytest.raises(codec.CodecError):
        codec.array_from_frame(b"", shape, np.uint8)
    with pytest.raises(codec.CodecError):
        codec.decode_zlib(zlib.compress(b""), shape, np.uint8)


def test_frame_size_checks_dimensions_then_the_product():
    assert codec.frame_size((3, 4, 2), np.float32) == 96
    with pytest.raises(codec.CodecError, match="over 95"):
        codec.frame_size((3, 4, 2), np.float32, max_bytes=95)
    with pytest.raises(codec.CodecError, match="does not fill"):
        codec.array_from_frame(b"\0" * 10, (3, 3), np.uint8)
