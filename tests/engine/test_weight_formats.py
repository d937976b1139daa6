"""The weight-format table (library/weight_formats.py) and what the memory plan makes of it."""

from __future__ import annotations

import pytest

from dreamwire.backend.engine import memory_plan as mp
from dreamwire.backend.library import weight_formats as wf


def test_gguf_bits_follow_ggml_block_layout():
    gguf = pytest.importorskip("gguf")
    for key, fmt in wf.GGUF.items():
        block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[key]]
        assert fmt.bits == pytest.approx(8 * block_bytes / block), key


def test_the_brief_figures():
    bits = {k: wf.weight_format(k).bits for k in ("fp8", "Q8_0", "Q5_K", "Q4_K", "Q4_0", "nf4")}
    assert bits == {"fp8": 8, "Q8_0": 8.5, "Q5_K": 5.5, "Q4_K": 4.5, "Q4_0": 4.5, "nf4": 4.5}
    # A 16-bit file costs whatever the engine computes in (fp32 on the CPU).
    assert wf.FULL.bytes_per_weight(4) == 4 and wf.FULL.bytes_per_weight(2) == 2
    assert wf.weight_format("Q4_K").bytes_per_weight(4) == 4.5 / 8
    with pytest.raises(ValueError, match="unknown weight format 'Q9'"):
        wf.weight_format("Q9")


def test_sd_denoiser_bytes_are_16_bit_and_smaller_formats_store_less():
    for family in ("sd1", "sdxl"):
        assert mp.denoiser_bytes(family) == mp.weight_bytes(family, "denoiser")
    sizes = [mp.denoiser_bytes("sdxl", wf.weight_format(k)) for k in ("fp16", "Q8_0", "Q4_K")]
    assert sizes == sorted(sizes, reverse=True)
    # Q4_K stores a quarter of the bits plus one upcast layer: far below half.
    assert sizes[2] < sizes[0] / 2
