"""Weight formats on fake tensors: a meta-built module stored as artists' files store it,
run as diffusers runs it (bench/pipeline_sim.py builds every family's pipeline with these).

  fp16  plain 16-bit modules (the key weight_formats.py gives 16-bit files).
  fp8   diffusers' own layerwise-casting selection (apply_layerwise_casting with the model
        class's skip patterns) stores the chosen layers in float8_e4m3fn; while a layer
        runs its weights are bf16 (a hook swaps them as diffusers' hook does with
        module.to(), which fake parameters cannot do in place).
  GGUF  every linear layer whose width ggml's blocks divide (as city96's files: all but
        the 64-wide patch embedding) holds its blocks as uint8, and its forward runs
        diffusers' own dequantize function for the type (diffusers.quantizers.gguf.utils)
        then casts to bf16, as GGUFLinear.forward_native does. (GGUFParameter, a tensor
        subclass, cannot wrap a fake tensor, hence the stand-in module.)
  NF4   every linear layer as bitsandbytes' Linear4bit stores it (4-bit codes, one fp32
        absmax per 64 weights); its forward allocates the dequantized bf16 weight that
        bitsandbytes' dequantize_4bit returns before the matmul (bitsandbytes has no fake
        kernels here, so the dequantization itself is an allocation, not a computation).
"""

from __future__ import annotations

import torch
from fake_gpu import LiveBytes, fake_cuda, on_fake_cuda

BF16 = torch.bfloat16


class GgufLinear(torch.nn.Module):
    """A linear layer stored as GGUF blocks; forward as diffusers' GGUFLinear.forward_native."""

    def __init__(self, lin: torch.nn.Linear, qtype):
        super().__init__()
        from diffusers.quantizers.gguf.utils import GGML_QUANT_SIZES

        self.qtype = qtype
        self.block, self.type_size = GGML_QUANT_SIZES[qtype]
        self.shape = (lin.out_features, lin.in_features)
        stored = (lin.out_features, lin.in_features // self.block * self.type_size)
        self.weight = torch.nn.Parameter(
            torch.empty(stored, dtype=torch.uint8, device="meta"), requires_grad=False
        )
        self.bias = lin.bias

    def forward(self, x):
        from diffusers.quantizers.gguf.utils import dequantize_functions

        blocks = self.weight.reshape(-1, self.type_size)
        w = dequantize_functions[self.qtype](blocks, self.block, self.type_size)
        w = w.reshape(self.shape).to(BF16)
        bias = None if self.bias is None else self.bias.to(BF16)
        return torch.nn.functional.linear(x, w, bias)


class Nf4Linear(torch.nn.Module):
    """A linear layer as bitsandbytes' Linear4bit stores it (blocksize 64, fp32 absmax)."""

    BLOCK = 64

    def __init__(self, lin: torch.nn.Linear):
        super().__init__()
        n = lin.out_features * lin.in_features
        self.shape = (lin.out_features, lin.in_features)
        self.weight = torch.nn.Parameter(
            torch.empty(n // 2, 1, dtype=torch.uint8, device="meta"), requires_grad=False
        )
        self.register_buffer("absmax", torch.empty(n // self.BLOCK, device="meta"))
        self.bias = lin.bias

    def forward(self, x):
        w = torch.empty(self.shape, dtype=BF16)  # dequantize_4bit's output
        return torch.nn.functional.linear(x, w, self.bias)


def _replace_linears(module: torch.nn.Module, make, wants) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear) and wants(child):
            setattr(module, name, make(child))
        else:
            _replace_linears(child, make, wants)


def store(model: torch.nn.Module, key: str) -> torch.nn.Module:
    """Store a meta-built bf16 `model` in format `key` (weight_formats keys)."""
    if key == "fp16":
        return model
    if key == "fp8":
        from diffusers.hooks import apply_layerwise_casting

        patterns = getattr(model, "_skip_layerwise_casting_patterns", None) or ()
        apply_layerwise_casting(
            model,
            storage_dtype=torch.float8_e4m3fn,
            compute_dtype=BF16,
            skip_modules_pattern=(*patterns, "pos_embed", "patch_embed", "norm"),
        )
        # diffusers' hooks cast with module.to(), which cannot swap fake parameters: the
        # same cast, parameter by parameter (the old storage is freed as module.to frees it).
        for m in model.modules():
            hook = (
                m._diffusers_hook.get_hook("layerwise_casting")
                if hasattr(m, "_diffusers_hook")
                else None
            )
            if hook is not None:
                hook.fn_ref.pre_forward = lambda mod, *a, **kw: (_cast(mod, BF16), (a, kw))[1]
                hook.fn_ref.post_forward = lambda mod, out: (_cast(mod, torch.float8_e4m3fn), out)[
                    1
                ]
        return model
    if key == "nf4":
        _replace_linears(model, Nf4Linear, lambda lin: True)
        return model
    import gguf

    qtype = gguf.GGMLQuantizationType[key]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    _replace_linears(
        model, lambda lin: GgufLinear(lin, qtype), lambda lin: lin.in_features % block == 0
    )
    return model


def _cast(module: torch.nn.Module, dtype: torch.dtype) -> None:
    for p in module.parameters(recurse=False):
        p.data = p.data.to(dtype)


def upcast_copies(key: str, width: int = 3072, out: int = 256) -> float:
    """Peak bytes a `key`-stored linear layer allocates beyond its stored weights while it
    runs, in copies of its bf16 weight (one token in, so the output is negligible)."""
    lin = torch.nn.Linear(width, out, device="meta", dtype=BF16)
    holder = store(torch.nn.Sequential(lin), key)
    with fake_cuda():
        holder = on_fake_cuda(holder)
        x = torch.randn(1, width, dtype=BF16)
        live = LiveBytes()
        with live, torch.no_grad():
            stored = live.hold(holder)
            y = holder(x)
            extra = live.peak - stored - y.untyped_storage().nbytes()
    return extra / (width * out * 2)
