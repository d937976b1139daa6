"""How many bytes a model's weights take, by the format they are stored in: the one table.

Artists' Flux (and later) files come as fp16/bf16, as fp8 (loaded with diffusers' layerwise
casting: fp8 storage, each layer upcast to bf16 while it runs), as GGUF quantizations
(city96's Q8_0, Q5_K, Q4_K, Q4_0 ..., dequantized one layer at a time by diffusers'
GGUFLinear) or as bitsandbytes NF4. The memory plan (engine/memory_plan.py) and the
admission check (engine/admission.py) both read the sizes here, so a format is described
once.

Bits per weight are the stored bits of a quantized weight *including* its block scales:
GGUF's from ggml's block layout (bytes per block of weights, as gguf.GGML_QUANT_SIZES lists
them; tests/engine/test_weight_formats.py checks the two agree when the gguf package is
installed), NF4's from bitsandbytes' default block of 64 weights with one fp32 absmax each.
Only the denoiser's linear layers are stored this way (99.97 % of Flux's transformer);
everything else runs at the engine's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightFormat:
    key: str
    label: str
    # Stored bits per weight, scales included; None: the file's tensors are converted to the
    # engine's dtype when loaded (fp16, bf16, fp32 files), so they cost what that dtype costs.
    bits: float | None
    # While a layer runs, copies of its weights at the compute dtype (2 bytes) held besides
    # the stored ones: the upcast (fp8, NF4) or the dequantization's temporaries (GGUF),
    # counted on fake tensors by bench/weight_sim.upcast_copies.
    upcast_copies: float = 0.0
    # Stored by diffusers' layerwise casting, which skips the layers the model class names
    # (MemoryFigures.cast_share); quantizers store every linear layer.
    layerwise_cast: bool = False
    cuda_only: bool = False  # bitsandbytes' 4-bit kernels need CUDA

    def bytes_per_weight(self, dtype_bytes: int) -> float:
        """Bytes a stored weight takes when the engine computes in `dtype_bytes`."""
        return dtype_bytes if self.bits is None else self.bits / 8

    @property
    def quantized(self) -> bool:
        return self.bits is not None


def _gguf(name: str, block: int, block_bytes: int, upcast: float) -> WeightFormat:
    return WeightFormat(name, f"GGUF {name}", 8 * block_bytes / block, upcast)


FULL = WeightFormat("fp16", "fp16/bf16 (the engine's dtype)", None)
FP8 = WeightFormat(
    "fp8", "fp8 storage, bf16 compute (layerwise casting)", 8.0, 1.0, layerwise_cast=True
)
# What NF4 would cost kept 4-bit (the memory bench's figure). Dreamwire's loader expands NF4
# files (library/nf4.py), so they count at full precision (sizes.checkpoint_weights).
NF4 = WeightFormat("nf4", "NF4 (bitsandbytes)", 4 + 32 / 64, 1.0, cuda_only=True)

# (block of weights, bytes per block) from ggml's block layout; then the upcast copies
# bench/weight_sim.upcast_copies measured, rounded up: diffusers dequantizes in fp16 and casts
# to bf16, so the integer codes, the fp16 and the bf16 weight are alive at once; K-quants
# add their sub-block scales, Q5_0/Q5_1 their 32-bit high-bit masks.
GGUF = {
    f.key: f
    for f in (
        _gguf("Q8_0", 32, 34, 2.0),
        _gguf("Q6_K", 256, 210, 2.6),
        _gguf("Q5_K", 256, 176, 3.6),
        _gguf("Q5_1", 32, 24, 5.0),
        _gguf("Q5_0", 32, 22, 5.0),
        _gguf("Q4_K", 256, 144, 2.6),
        _gguf("Q4_1", 32, 20, 2.5),
        _gguf("Q4_0", 32, 18, 2.0),
        _gguf("Q3_K", 256, 110, 2.7),
        _gguf("Q2_K", 256, 84, 2.7),
    )
}

FORMATS: dict[str, WeightFormat] = {f.key: f for f in (FULL, FP8, NF4, *GGUF.values())}


def weight_format(key: str) -> WeightFormat:
    """The format named `key` ("fp16", "fp8", "nf4", or a GGUF type such as "Q4_K")."""
    try:
        return FORMATS[key]
    except KeyError:
        raise ValueError(f"unknown weight format {key!r}: one of {', '.join(FORMATS)}") from None


def is_compute_dtype(dtype) -> bool:
    """A dtype weights compute in (fp16, bf16, fp32). Anything else is a storage layout (fp8
    under layerwise casting, GGUF's packed bytes) that is upcast one layer at a time and must
    be kept as it is: casting it undoes the memory it saves, and adding to it in place (a
    LoRA's delta) would be rounded to fp8 or corrupt packed blocks."""
    return dtype.is_floating_point and dtype.itemsize >= 2


def stored_compressed(module) -> bool:
    """Whether any of the module's weights are kept in a storage layout (fp8, GGUF)."""
    return any(not is_compute_dtype(p.dtype) for p in module.parameters())
