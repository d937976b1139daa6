"""Expanding bitsandbytes NF4 weights (Forge's flux1-dev-bnb-nf4*.safetensors) to floats.

bitsandbytes saves a 4-bit linear layer's weight as several tensors beside `<name>.weight`:

- `<name>.weight`: uint8, two 4-bit codes a byte (the first weight in the high nibble);
- `.weight.quant_map`: the 16 code values (NF4: quantiles of a normal distribution, -1..1);
- `.weight.absmax`: one scale per block of `blocksize` weights: float32, or uint8 codes when
  the scales are themselves quantized ("double quant", Forge's first file; not in -v2);
- `.weight.nested_absmax`, `.weight.nested_quant_map`: the scales' own blockwise scales and
  256-value code table, plus `nested_offset` added back (double quant only);
- `.weight.quant_state.bitsandbytes__nf4`: a JSON text as uint8 bytes with the rest
  (quant_type, blocksize, the original dtype and shape, the nested block size and offset).

A weight is code_map[code] * absmax[its block], in the original shape. Here that is done
once on load, for every device: the file then takes its expanded size in memory (no saving;
keeping it 4-bit needs bitsandbytes' CUDA kernels). FP4 files (`bitsandbytes__fp4`) use
another code table and are refused by name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dreamwire.shared.errors import DreamwireError, ErrorCode

if TYPE_CHECKING:  # identification reads headers only and needs no torch
    import torch

NF4_MARKER = ".quant_state.bitsandbytes__nf4"
FP4_MARKER = ".quant_state.bitsandbytes__fp4"
_STATS = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", NF4_MARKER)

# The NF4 data type's 16 values (Dettmers et al., QLoRA, appendix E): the code table
# bitsandbytes' kernels use whatever quant_map a file stores.
NF4_CODE = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)


@dataclass(frozen=True)
class NestedScales:
    """Double quant: the per-block scales stored as uint8 codes into a 256-value table,
    scaled per block of `blocksize` codes, plus one offset."""

    code: torch.Tensor  # (256,) float32
    absmax: torch.Tensor  # float32, one per block of codes
    blocksize: int
    offset: float


@dataclass(frozen=True)
class NF4Weight:
    packed: torch.Tensor  # uint8, two codes a byte
    absmax: torch.Tensor  # float32 scales, or uint8 codes when `nested`
    blocksize: int
    shape: tuple[int, ...]
    dtype: torch.dtype  # the weight's dtype before quantization (Forge's: bfloat16)
    nested: NestedScales | None


def has_nf4(tensors) -> bool:
    return any(k.endswith(NF4_MARKER) for k in tensors)


def unpacked_shapes(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Header shapes with each packed NF4 weight given its matrix shape (out, in), read
    from its bias (out) and its byte count (two weights a byte): the true shape is in the
    quant state's data, which identification from headers does not read."""
    out = dict(shapes)
    for key in shapes:
        if not key.endswith(".weight" + NF4_MARKER):
            continue
        weight = key.removesuffix(NF4_MARKER)
        bias = shapes.get(weight.removesuffix("weight") + "bias")
        if bias and weight in shapes:
            count = 2 * math.prod(shapes[weight])
            out[weight] = (bias[0], count // bias[0])
    return out


def _blockwise(values: torch.Tensor, scales: torch.Tensor, blocksize: int) -> torch.Tensor:
    """values[i] * scales[i // blocksize] (the last block may be short), in float32."""
    import torch

    values = values.float().reshape(-1)
    scales = scales.float()
    # Whole blocks as rows (no index tensor as large as the weight: Flux's largest matrix
    # has 38 M weights); then the short last block, if any.
    whole = values.numel() - values.numel() % blocksize
    out = torch.empty_like(values)
    out[:whole] = (values[:whole].view(-1, blocksize) * scales[: whole // blocksize, None]).view(-1)
    if whole < values.numel():
        out[whole:] = values[whole:] * scales[whole // blocksize]
    return out


def _scales(weight: NF4Weight) -> torch.Tensor:
    if weight.nested is None:
        return weight.absmax.float()
    nested = weight.nested
    values = nested.code[weight.absmax.long()]
    return _blockwise(values, nested.absmax, nested.blocksize) + nested.offset


def decode(weight: NF4Weight) -> torch.Tensor:
    """The weights in their original shape and dtype: products in float32, then rounded to
    that dtype, as bitsandbytes' dequantize_4bit does."""
    import torch

    count = 1
    for d in weight.shape:
        count *= d
    packed = weight.packed.reshape(-1)
    codes = torch.stack([packed >> 4, packed & 0x0F], dim=1).reshape(-1)[:count]
    values = torch.tensor(NF4_CODE, dtype=torch.float32)[codes.long()]
    out = _blockwise(values, _scales(weight), weight.blocksize).reshape(weight.shape)
    return out.to(weight.dtype)


def read_weight(tensors: dict, name: str) -> NF4Weight:
    """The NF4 weight `name` (".weight" included) from a file's tensors."""
    meta = json.loads(bytes(tensors[name + NF4_MARKER].tolist()).decode("utf-8"))
    if meta.get("quant_type") != "nf4":
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"{name}: bitsandbytes {meta.get('quant_type')!r}"
        )
    nested = None
    if name + ".nested_absmax" in tensors:
        nested = NestedScales(
            code=tensors[name + ".nested_quant_map"].float(),
            absmax=tensors[name + ".nested_absmax"].float(),
            blocksize=int(meta["nested_blocksize"]),
            offset=float(meta["nested_offset"]),
        )
    return NF4Weight(
        packed=tensors[name],
        absmax=tensors[name + ".absmax"],
        blocksize=int(meta["blocksize"]),
        shape=tuple(int(d) for d in meta["shape"]),
        dtype=_dtype(meta["dtype"]),
        nested=nested,
    )


def _dtype(name: str) -> torch.dtype:
    import torch

    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"not a float dtype: {name!r}")
    return dtype


def expand_nf4(tensors: dict, source: str) -> dict:
    """The file's tensors with every NF4 weight decoded (to the dtype it was quantized
    from) and its statistics removed; tensors without NF4 weights are returned as they are. `source` names the file
    in errors."""
    fp4 = [k for k in tensors if k.endswith(FP4_MARKER)]
    if fp4:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{source} holds bitsandbytes FP4 weights, which Dreamwire does not load; "
            "use its NF4 or GGUF version",
        )
    names = [k.removesuffix(NF4_MARKER) for k in tensors if k.endswith(NF4_MARKER)]
    if not names:
        return tensors
    stats = {name + suffix for name in names for suffix in _STATS}
    out = {k: v for k, v in tensors.items() if k not in stats}
    for name in names:
        try:
            out[name] = decode(read_weight(tensors, name))
        except (KeyError, ValueError, RuntimeError, IndexError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT,
                f"{source}: the NF4 weight {name} cannot be read ({exc.__class__.__name__}: {exc})",
            ) from exc
    return out
