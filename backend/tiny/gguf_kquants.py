"""Writing GGUF K-quant blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), which the `gguf` package
can read but not write.

city96's Flux GGUFs are mostly K-quants (Q4_K_S, Q5_K_S, Q6_K, Q3_K_S, Q2_K), so the tests
need files in those types. The bytes follow ggml's block layouts (ggml-common.h): super-
blocks of QK_K = 256 weights, each with an f16 scale `d` (and an f16 `dmin` for the types
that store a minimum) and per-sub-block scales quantized against it:

  Q2_K  84 bytes: scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2 bits), d, dmin
  Q3_K 110 bytes: hmask[32] (3rd bit), qs[64] (low 2 bits), scales[12] (16 x 6 bits,
        signed + 32), d
  Q4_K 144 bytes: d, dmin, scales[12] (8 scales + 8 mins, 6 bits each), qs[128] (4 bits)
  Q5_K 176 bytes: d, dmin, scales[12], qh[32] (5th bit), qs[128] (low 4 bits)
  Q6_K 210 bytes: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d

Quantized values are spread over bytes in groups: byte l of a group holds weight l of
several consecutive runs of `width` weights, one per bit position (`_pack`).

The rounding is plain min/max per sub-block, not llama.cpp's error-minimizing search: the
files are for testing that decoders read these layouts, and decode within the stated
error of the type (tests/library/test_flux_kquants.py checks the bytes with gguf-py's and
diffusers' independent decoders).
"""

from __future__ import annotations

import numpy as np

QK_K = 256
BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def _f16(x: np.ndarray) -> np.ndarray:
    """(n,) float32 -> (n, 2) bytes of the f16 value, little-endian as ggml stores it."""
    return x.astype("<f2").view(np.uint8).reshape(-1, 2)


def _f16_value(x: np.ndarray) -> np.ndarray:
    """The f16 value a decoder will read back, as float32 (quantize against it, not x)."""
    return x.astype(np.float16).astype(np.float32)


def _pack(q: np.ndarray, bits: int, width: int) -> np.ndarray:
    """(n, k) unsigned codes < 2**bits -> bytes: byte l of each group of `width` holds code
    l of 8 // bits consecutive runs of `width` codes, the first run in the lowest bits."""
    n = q.shape[0]
    runs = q.astype(np.uint8).reshape(n, -1, 8 // bits, width)
    out = np.zeros((n, runs.shape[1], width), dtype=np.uint8)
    for k in range(8 // bits):
        out |= runs[:, :, k, :] << np.uint8(bits * k)
    return out.reshape(n, -1)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b)).astype(np.float32)


def _scale_min_subblocks(x: np.ndarray, levels: int, scale_bits: int):
    """Asymmetric sub-blocks (Q2_K, Q4_K, Q5_K): x ~ d*sc*q - dmin*m with q in 0..levels,
    sc and m in 0..2**scale_bits-1. x: (n, subs, size). Returns d, dmin (n,) f16 values,
    sc, m (n, subs) ints and q (n, subs, size)."""
    top = 2**scale_bits - 1
    low = np.minimum(x.min(axis=2), 0.0)  # the minimum is stored as a non-negative offset
    scale = (x.max(axis=2) - low) / levels
    d = _f16_value(scale.max(axis=1) / top)
    dmin = _f16_value(-low.min(axis=1) / top)
    sc = np.clip(np.rint(_safe_div(scale, d[:, None])), 0, top)
    m = np.clip(np.rint(_safe_div(-low, dmin[:, None])), 0, top)
    step = (d[:, None] * sc)[:, :, None]
    offset = (dmin[:, None] * m)[:, :, None]
    q = np.clip(np.rint(_safe_div(x + offset, step)), 0, levels)
    return d, dmin, sc.astype(np.uint8), m.astype(np.uint8), q.astype(np.uint8)


def _symmetric_subblocks(x: np.ndarray, low: int, high: int, scale_max: int):
    """Symmetric sub-blocks (Q3_K, Q6_K): x ~ d*sc*q, q in low..high, sc in 0..scale_max.
    Returns d (n,) f16 values, sc (n, subs) ints, q (n, subs, size) signed ints."""
    scale = np.abs(x).max(axis=2) / high
    d = _f16_value(scale.max(axis=1) / scale_max)
    sc = np.clip(np.rint(_safe_div(scale, d[:, None])), 0, scale_max)
    q = np.clip(np.rint(_safe_div(x, (d[:, None] * sc)[:, :, None])), low, high)
    return d, sc.astype(np.int16), q.astype(np.int16)


def _pack_scales_mins_6bit(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K's 12 bytes for 8 six-bit scales and 8 six-bit mins: bytes 0-3 and 4-7 hold
    scales/mins 0-3 in their low 6 bits and the top 2 bits of scales/mins 4-7 above them;
    bytes 8-11 hold the low 4 bits of scales 4-7 (low nibble) and of mins 4-7 (high)."""
    first = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    second = (m[:, :4] & 0x3F) | ((m[:, 4:] >> 4) << 6)
    third = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    return np.concatenate([first, second, third], axis=1).astype(np.uint8)


def _pack_scales_q3(sc: np.ndarray) -> np.ndarray:
    """Q3_K's 12 bytes for 16 six-bit scales: low nibbles of scales 0-7 in bytes 0-7, of
    8-15 in their high nibbles; the top 2 bits of scale j in byte 8 + j % 4 at 2 * (j // 4)."""
    low = sc & 0x0F
    nibbles = low[:, :8] | (low[:, 8:] << 4)
    high = (sc >> 4) & 0x03
    tops = np.zeros((sc.shape[0], 4), dtype=np.uint8)
    for j in range(16):
        tops[:, j % 4] |= (high[:, j] << (2 * (j // 4))).astype(np.uint8)
    return np.concatenate([nibbles.astype(np.uint8), tops], axis=1)


def _q2_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    d, dmin, sc, m, q = _scale_min_subblocks(x.reshape(n, 16, 16), levels=3, scale_bits=4)
    scales = sc | (m << 4)
    return np.concatenate([scales, _pack(q.reshape(n, QK_K), 2, 32), _f16(d), _f16(dmin)], 1)


def _q3_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    d, sc, q = _symmetric_subblocks(x.reshape(n, 16, 16), -4, 3, 31)
    u = (q + 4).reshape(n, QK_K).astype(np.uint8)  # 0..7: low 2 bits, and a set 3rd bit
    hmask = _pack(u >> 2, 1, 32)
    scales = _pack_scales_q3((sc + 32).astype(np.uint8))
    return np.concatenate([hmask, _pack(u & 3, 2, 32), scales, _f16(d)], axis=1)


def _q4_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    d, dmin, sc, m, q = _scale_min_subblocks(x.reshape(n, 8, 32), levels=15, scale_bits=6)
    scales = _pack_scales_mins_6bit(sc, m)
    return np.concatenate([_f16(d), _f16(dmin), scales, _pack(q.reshape(n, QK_K), 4, 32)], 1)


def _q5_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    d, dmin, sc, m, q = _scale_min_subblocks(x.reshape(n, 8, 32), levels=31, scale_bits=6)
    q = q.reshape(n, QK_K)
    scales = _pack_scales_mins_6bit(sc, m)
    parts = [_f16(d), _f16(dmin), scales, _pack(q >> 4, 1, 32), _pack(q & 0x0F, 4, 32)]
    return np.concatenate(parts, axis=1)


def _q6_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    d, sc, q = _symmetric_subblocks(x.reshape(n, 16, 16), -32, 31, 127)
    u = (q + 32).reshape(n, QK_K).astype(np.uint8)  # 0..63
    scales = sc.astype(np.int8).view(np.uint8)
    return np.concatenate([_pack(u & 0x0F, 4, 64), _pack(u >> 4, 2, 32), scales, _f16(d)], 1)


_ENCODERS = {"Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}


def quantize_k(data: np.ndarray, qtype: str) -> np.ndarray:
    """`data` (..., k) with k a multiple of 256 -> uint8 (..., k / 256 * block bytes), the
    shape gguf.quants.quantize gives (and GGUFWriter.add_tensor takes with raw_dtype)."""
    if data.shape[-1] % QK_K:
        raise ValueError(f"{qtype} needs rows of a multiple of {QK_K} weights, not {data.shape}")
    blocks = np.asarray(data, dtype=np.float32).reshape(-1, QK_K)
    packed = _ENCODERS[qtype](blocks)
    assert packed.shape[1] == BLOCK_BYTES[qtype]
    return packed.reshape(*data.shape[:-1], data.shape[-1] // QK_K * BLOCK_BYTES[qtype])
