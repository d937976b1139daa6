"""The pure numpy PNG/zlib coder against Pillow, the reference PNG implementation here."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

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
