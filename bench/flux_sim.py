"""Flux.1 dev on fake tensors: the real architecture, its weights stored as artists' files
store them, run the way each offload mode runs it. bench/bench_lowvram.py measures with it.

The transformer (FluxTransformer2DModel from the catalog's flux-dev config: 19 double and
38 single blocks, 3072 wide, 11.9 B parameters), T5-XXL (4.76 B), CLIP-L and the 16-channel
VAE are built on the meta device and moved to fake tensors as bench/fake_gpu.py does for
SD. Weight formats (backend/library/weight_formats.py), as diffusers runs them:

  bf16  plain modules.
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

Offload modes: "none" holds every model's weights for the whole job; "model" (diffusers'
enable_model_cpu_offload) holds the running model's only, in the pipeline's order
CLIP -> T5 -> transformer -> VAE; "sequential" (enable_sequential_cpu_offload) holds no
weights, and each module's own parameters are copied in while it runs, as accelerate's
hooks do.
"""

from __future__ import annotations

import contextlib
import json
import re

import torch
from fake_gpu import LiveBytes, Stage, fake_cuda, on_fake_cuda, one_blend_row

BF16 = torch.bfloat16
T5_TOKENS = 512  # FluxPipeline's max_sequence_length for dev
CLIP_TOKENS = 77
PATCH = 2  # Flux packs 2x2 latent pixels into one token
ARCH = "flux-dev"


def flux_config(component: str) -> dict:
    from dreamwire import catalog

    return json.loads((catalog.config_dir(ARCH) / component / "config.json").read_text())


# -- weight formats ------------------------------------------------------------------------


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


@contextlib.contextmanager
def _one_module_at_a_time(model: torch.nn.Module, live: LiveBytes):
    """Sequential CPU offload: each module's own weights count only while it runs (as
    accelerate's hooks move them in and out)."""

    def fetch(module, _args):
        live.hold(*module.parameters(recurse=False), *module.buffers(recurse=False))

    def release(module, _args, _out):
        live.drop(module)

    handles = []
    for m in model.modules():
        if next(m.parameters(recurse=False), None) is not None:
            handles += [m.register_forward_pre_hook(fetch), m.register_forward_hook(release)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# -- the pipeline ----------------------------------------------------------------------------


def meta_flux(weights: str):
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    with torch.device("meta"):
        transformer = FluxTransformer2DModel.from_config(flux_config("transformer")).to(BF16)
        vae = AutoencoderKL.from_config(flux_config("vae")).to(BF16)
        clip = CLIPTextModel(CLIPTextConfig.from_dict(flux_config("text_encoder"))).to(BF16)
        t5 = T5EncoderModel(T5Config.from_dict(flux_config("text_encoder_2"))).to(BF16)
    return store(transformer, weights), vae, clip, t5


class FluxSim:
    """Flux dev with its transformer stored in `weights`, as fake modules, built once."""

    def __init__(self, weights: str = "fp16"):
        self.weights = weights
        transformer, vae, clip, t5 = meta_flux(weights)
        self._fake = fake_cuda()
        self._fake.__enter__()
        self.transformer = on_fake_cuda(transformer)
        self.vae = on_fake_cuda(vae)
        self.clip = on_fake_cuda(clip)
        self.t5 = on_fake_cuda(t5)

    def close(self) -> None:
        self._fake.__exit__(None, None, None)

    @property
    def models(self) -> list[torch.nn.Module]:
        return [self.clip, self.t5, self.transformer, self.vae]

    def _run(self, name: str, model, mode: str, work) -> Stage:
        resident = {"none": self.models, "model": [model], "sequential": []}[mode]
        live = LiveBytes()
        seq = (
            _one_module_at_a_time(model, live) if mode == "sequential" else contextlib.nullcontext()
        )
        with live, torch.no_grad(), seq:
            weights = live.hold(*resident)
            work()
        return Stage(name, weights, live.peak)

    def clip_stage(self, mode: str, batch: int = 1) -> Stage:
        def work():
            out = self.clip(torch.zeros(batch, CLIP_TOKENS, dtype=torch.long))
            del out

        return self._run("CLIP-L", self.clip, mode, work)

    def t5_stage(self, mode: str, batch: int = 1) -> Stage:
        def work():
            out = self.t5(torch.zeros(batch, T5_TOKENS, dtype=torch.long))
            del out

        return self._run("T5-XXL", self.t5, mode, work)

    def transformer_stage(self, side: int, mode: str, batch: int = 1) -> Stage:
        cfg = self.transformer.config
        tokens = (side // 8 // PATCH) ** 2

        def work():
            x = torch.randn(batch, tokens, cfg.in_channels, dtype=BF16)
            ctx = torch.randn(batch, T5_TOKENS, cfg.joint_attention_dim, dtype=BF16)
            out = self.transformer(
                x,
                encoder_hidden_states=ctx,
                pooled_projections=torch.randn(batch, cfg.pooled_projection_dim, dtype=BF16),
                timestep=torch.full((batch,), 0.5, dtype=BF16),
                img_ids=torch.zeros(tokens, 3, dtype=BF16),
                txt_ids=torch.zeros(T5_TOKENS, 3, dtype=BF16),
                guidance=torch.full((batch,), 3.5) if cfg.guidance_embeds else None,
                return_dict=False,
            )[0]
            del out

        label = f"transformer {side}x{side} {self.weights}"
        return self._run(label, self.transformer, mode, work)

    def decode_stage(self, side: int, mode: str, tile_px: int | None = None) -> Stage:
        from dreamwire.backend.engine.tiled_vae import tiled

        def work():
            z = torch.randn(1, self.vae.config.latent_channels, side // 8, side // 8, dtype=BF16)
            img = self.vae.decode(z).sample
            del img

        with tiled(self.vae, tile_px is not None, tile_px), one_blend_row(self.vae):
            label = f"VAE decode {side}x{side}" + (f" tiles {tile_px}" if tile_px else "")
            return self._run(label, self.vae, mode, work)

    def stages(self, side: int, mode: str, tile_px: int | None = None) -> list[Stage]:
        return [
            self.clip_stage(mode),
            self.t5_stage(mode),
            self.transformer_stage(side, mode),
            self.decode_stage(side, mode, tile_px),
        ]


# -- figures for the memory plan ---------------------------------------------------------------


def figures() -> dict:
    """Parameter counts of the real architecture that MemoryFigures holds."""
    transformer, vae, clip, t5 = meta_flux("fp16")

    def count(m, pred=lambda _n, _m: True) -> int:
        # By parameter, once: T5's encoder embeds with its `shared` table.
        seen = {
            id(p): p.numel()
            for n, mod in m.named_modules()
            if pred(n, mod)
            for p in mod.parameters(recurse=False)
        }
        return sum(seen.values())

    skip = re.compile("|".join(transformer._skip_layerwise_casting_patterns))
    cast = count(
        transformer,
        lambda n, m: isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and not skip.search(n),
    )
    largest = max(
        sum(p.numel() for p in m.parameters(recurse=False))
        for model in (transformer, vae, clip, t5)
        for m in model.modules()
    )
    return {
        "transformer_M": count(transformer) / 1e6,
        "t5_M": count(t5) / 1e6,
        "clip_M": count(clip) / 1e6,
        "vae_M": count(vae) / 1e6,
        "cast_share": cast / count(transformer),
        "largest_layer_M": max(
            m.weight.numel() for m in transformer.modules() if isinstance(m, torch.nn.Linear)
        )
        / 1e6,
        "largest_module_M": largest / 1e6,
    }


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
