"""The fast path: what plain diffusers leaves on the table on a GPU, applied per pass.

Per device the policy (`decide`, a pure function) picks:

  * channels_last memory format for the UNet, ControlNets and VAE (convolutions run NHWC
    on tensor cores without layout transposes; a transformer denoiser such as Flux's has
    no 4-D weights, so for it only the VAE changes);
  * fused QKV projections (one matmul instead of three in self-attention, two in cross;
    Flux's joint attention fuses its text stream's q/k/v as well);
  * an SDPA backend order for `torch.nn.attention.sdpa_kernel`;
  * torch.compile(mode="reduce-overhead"): inductor kernels replayed as CUDA graphs, one
    graph per (model, resolution, batch) shape, with inductor's caches on disk in the
    Dreamwire cache folder so a machine pays each shape's compile once.

Environment: DREAMWIRE_FAST_PATH=0 turns it off (as do `--no-fast-path` on `dreamwire serve`
and `generate`), DREAMWIRE_SDPA=flash,efficient,math overrides the attention backend order,
DREAMWIRE_CACHE moves the cache folder (default ~/.cache/dreamwire), DREAMWIRE_DTYPE=bf16
asks for bfloat16 (`choose_dtype`, used by device.pick_device).

CPU and MPS never compile (the compile takes longer than the jobs it would speed up, and
MPS lacks inductor's CUDA graphs); low-VRAM and seamless passes, odd sizes, a model that has
already compiled many shapes and a module whose compile failed run eager, with a logged
reason. The first pass on a new shape reports the Progress state "compiling".

This module is the speed policy only: TAESD previews are taesd.py's and the VAE decode
fitted to free memory is vae_fit.py's.

LoRA without recompiling: compiled graphs read parameters as inputs (inline_inbuilt_nn_modules),
and LoRA adds its deltas to `.weight` in place, so patched weights flow into the same graph.
Fusing would normally break that (diffusers copies q, k and v into a new to_qkv weight), so
here to_q/to_k/to_v's weights are re-made as views into the fused weight: an in-place patch
of to_q lands in to_qkv. Anything that moves modules (offload, .to()) can untie the views;
`applied` re-ties them from q/k/v, which stay the source of truth, before every pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamwire.backend.families import spec_for

log = logging.getLogger("dreamwire.fastpath")

ENV = "DREAMWIRE_FAST_PATH"
SDPA_ENV = "DREAMWIRE_SDPA"  # e.g. "flash,efficient,math" to override the backend order
CACHE_ENV = "DREAMWIRE_CACHE"

# Measured with bench/bench_fastpath.py on the tiny models (CPU, fp32, 2 cores): neither
# channels_last nor fused QKV was faster beyond noise, and both change float rounding, which
# the engine's exact-equality tests against diffusers rely on. So CPU runs plain.
CPU_DEFAULTS = {"channels_last": False, "fuse_qkv": False}

# Sizes the compiled path takes: multiples of 64 px up to 2048 per side, small batches.
# Anything else is rare enough that a compile (tens of seconds) would cost more than it saves.
COMPILE_MULTIPLE = 64
COMPILE_MAX_SIDE = 2048
COMPILE_MAX_BATCH = 4
# Dynamo keeps 8 graphs per function (recompile_limit); stay below so that a new shape
# never silently falls back to eager inside a job that reported "compiling".
MAX_SHAPES = 6
# Dynamo's per-code-object limit, for every compiled model together (see setup_compile_cache).
RECOMPILE_LIMIT = 64
# inductor on GPUs; tests on CPU swap in "aot_eager" to drive the same path without codegen.
COMPILE_BACKEND = "inductor"
COMPILE_MODE = "reduce-overhead"

_override: bool | None = None


def set_enabled(flag: bool | None) -> None:
    """Process-wide switch; None goes back to the environment variable."""
    global _override
    _override = flag


def is_enabled() -> bool:
    if _override is not None:
        return _override
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# -- the policy (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    sdpa: tuple[str, ...] = ()  # backend names in priority order; () = torch's default
    reasons: tuple[str, ...] = ()  # why something is off, for the log

    @property
    def any(self) -> bool:
        return self.channels_last or self.fuse_qkv or self.compile or bool(self.sdpa)


def sdpa_order(device_type: str, capability: tuple[int, int] | None, env: str | None = None):
    """SDPA backends in priority order. cuDNN attention is the fastest on Hopper (sm90+) in
    fp16/bf16; flash then memory-efficient elsewhere. `env` (DREAMWIRE_SDPA) overrides."""
    if env:
        return tuple(s.strip().lower() for s in env.split(",") if s.strip())
    if device_type != "cuda":
        return ()
    if capability is not None and capability >= (9, 0):
        return ("cudnn", "flash", "efficient", "math")
    return ("flash", "efficient", "math")


def decide(
    device_type: str,
    *,
    enabled: bool = True,
    width: int = 512,
    height: int = 512,
    batch: int = 1,
    low_vram: bool = False,
    seamless: bool = False,
    shapes_compiled: int = 0,
    new_shape: bool = True,
    compile_available: bool = True,
    capability: tuple[int, int] | None = None,
    sdpa_env: str | None = None,
    cpu_defaults: dict[str, bool] | None = None,
) -> Decision:
    """What to do for one pass on `device_type` ("cuda" | "mps" | "cpu")."""
    if not enabled:
        return Decision(reasons=("fast path turned off",))
    if device_type == "cpu":
        d = CPU_DEFAULTS if cpu_defaults is None else cpu_defaults
        return Decision(
            channels_last=d.get("channels_last", False),
            fuse_qkv=d.get("fuse_qkv", False),
            reasons=("CPU: torch.compile warm-up costs more than the jobs it would speed up",),
        )
    if device_type == "mps":
        # MPS convolutions gain nothing from channels_last and inductor has no MPS graphs.
        return Decision(fuse_qkv=True, reasons=("MPS: no compiled path",))
    if device_type != "cuda":
        return Decision(reasons=(f"{device_type}: unknown device, running eager",))

    why: list[str] = []
    if not compile_available:
        why.append("torch.compile unavailable (no Triton)")
    if low_vram:
        why.append("low-VRAM mode offloads modules between steps")
    if seamless:
        why.append("seamless mode patches the convolutions' padding")
    if width % COMPILE_MULTIPLE or height % COMPILE_MULTIPLE:
        why.append(f"{width}x{height} is not a multiple of {COMPILE_MULTIPLE}")
    if max(width, height) > COMPILE_MAX_SIDE:
        why.append(f"{width}x{height} is larger than {COMPILE_MAX_SIDE} px")
    if batch > COMPILE_MAX_BATCH:
        why.append(f"batch {batch} is larger than {COMPILE_MAX_BATCH}")
    if new_shape and shapes_compiled >= MAX_SHAPES:
        why.append(f"this model already holds {shapes_compiled} compiled shapes")
    return Decision(
        channels_last=True,
        # Offloaded modules move every step, which unties the fused views each time.
        fuse_qkv=not low_vram,
        compile=not why,
        sdpa=sdpa_order("cuda", capability, sdpa_env),
        reasons=tuple(why),
    )


def choose_dtype(device_type: str, bf16_supported: bool, prefer: str | None = None) -> torch.dtype:
    """fp16 on GPUs: as fast as bf16 on every card that has both, with three more mantissa
    bits (SDXL's VAE overflow is handled by diffusers' force_upcast). bf16 on request
    (DREAMWIRE_DTYPE=bf16) where the card has it; fp32 on CPU."""
    if device_type not in ("cuda", "mps"):
        return torch.float32
    if prefer == "bf16" and (bf16_supported or device_type == "mps"):
        return torch.bfloat16
    if prefer == "fp32":
        return torch.float32
    return torch.float16


# -- the compile cache on disk --------------------------------------------------------------


def cache_dir() -> Path:
    """$DREAMWIRE_CACHE, else $XDG_CACHE_HOME/dreamwire, else ~/.cache/dreamwire."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dreamwire"


_USER_ENV = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
_cache_lock = threading.Lock()
_cache_ready: Path | None = None


def setup_compile_cache(folder: Path | None = None) -> Path:
    """Point inductor's and Triton's on-disk caches into the Dreamwire cache folder (the
    user's own TORCHINDUCTOR_CACHE_DIR wins) and load saved cache artifacts, once."""
    global _cache_ready
    with _cache_lock:
        if _cache_ready is not None:
            return _cache_ready
        folder = Path(folder) if folder is not None else cache_dir() / "inductor"
        folder.mkdir(parents=True, exist_ok=True)
        # inductor writes its default into the environment on first use, so the user's own
        # setting is the one seen when this module was imported.
        if _USER_ENV.get("TORCHINDUCTOR_CACHE_DIR") is None:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
        if _USER_ENV.get("TRITON_CACHE_DIR") is None:
            os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
        os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
        os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True
        # diffusers wraps the UNet's, ControlNet's and Flux's forward in one decorator, so
        # they share one code object, and dynamo's recompile limit (8) counts per code
        # object: a backend holding a few models would silently fall back to eager after 8
        # graphs in all. The engine caps each model's shapes itself (MAX_SHAPES).
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
        _load_artifacts(folder)
        _cache_ready = folder
        return folder


def _artifacts_file(folder: Path) -> Path:
    return folder / "dreamwire-artifacts.bin"


def _load_artifacts(folder: Path) -> None:
    path = _artifacts_file(folder)
    loader = getattr(torch.compiler, "load_cache_artifacts", None)
    if loader is None or not path.is_file():
        return
    try:
        loader(path.read_bytes())
    except Exception as exc:  # a stale file from another torch: recompile instead
        log.info("ignoring compile cache artifacts %s: %s", path, exc)


def save_artifacts(folder: Path | None = None) -> None:
    """Save torch's portable cache artifacts (torch >= 2.7) beside the on-disk caches, so a
    fresh process skips even the inductor cache lookups' misses."""
    saver = getattr(torch.compiler, "save_cache_artifacts", None)
    if saver is None:
        return
    folder = folder or _cache_ready or cache_dir() / "inductor"
    try:
        saved = saver()
    except Exception as exc:
        log.info("could not save compile cache artifacts: %s", exc)
        return
    if saved:
        data, _info = saved
        tmp = _artifacts_file(folder).with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(_artifacts_file(folder))


# -- module transforms ------------------------------------------------------------------


def _attention_modules(module: nn.Module):
    """UNet attention (attention_processor.Attention) and the transformers' own attention
    classes (AttentionModuleMixin: FluxAttention, ...), which share no base class."""
    from diffusers.models.attention import AttentionModuleMixin
    from diffusers.models.attention_processor import Attention

    kinds = (Attention, AttentionModuleMixin)
    return [m for m in module.modules() if isinstance(m, kinds)]


def set_channels_last(module: nn.Module) -> bool:
    if getattr(module, "_dreamwire_channels_last", False):
        return False
    module.to(memory_format=torch.channels_last)
    module._dreamwire_channels_last = True
    return True


def _tie(attn, fused_name: str, parts: tuple[str, ...]) -> None:
    """Make `fused_name`'s weight (and bias) the concatenation of `parts`' and re-make the
    parts as views into it, so in-place changes to a part reach the fused projection."""
    fused = getattr(attn, fused_name)
    linears = [getattr(attn, p) for p in parts]
    for attr in ("weight", "bias"):
        tensors = [getattr(lin, attr) for lin in linears]
        if tensors[0] is None:
            continue
        with torch.no_grad():
            whole = torch.cat([t.detach() for t in tensors])
        setattr(fused, attr, nn.Parameter(whole, requires_grad=False))
        start = 0
        for lin, t in zip(linears, tensors, strict=True):
            n = t.shape[0]
            setattr(lin, attr, nn.Parameter(whole[start : start + n], requires_grad=False))
            start += n


def _fused_groups(attn) -> list[tuple[str, tuple[str, ...]]]:
    """(fused projection, its parts) for each fused projection `attn` holds: q/k/v or k/v,
    and a joint-attention transformer's added (text-stream) q/k/v."""
    groups = []
    if getattr(attn, "to_qkv", None) is not None:
        groups.append(("to_qkv", ("to_q", "to_k", "to_v")))
    elif getattr(attn, "to_kv", None) is not None:
        groups.append(("to_kv", ("to_k", "to_v")))
    if getattr(attn, "to_added_qkv", None) is not None:
        groups.append(("to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj")))
    return groups


def _tied(attn, fused_name: str, parts: tuple[str, ...]) -> bool:
    fused = getattr(attn, fused_name).weight
    start = fused.data_ptr()
    step = fused.element_size() * fused.shape[1] if fused.dim() == 2 else 0
    offset = 0
    for p in parts:
        w = getattr(attn, p).weight
        if w.device != fused.device or w.dtype != fused.dtype:
            return False
        if w.data_ptr() != start + offset * step:
            return False
        offset += w.shape[0]
    return True


def fuse_qkv(module: nn.Module) -> int:
    """Fuse q/k/v (k/v in cross-attention) of every plain-SDPA attention in `module`, and of
    every transformer attention under its default processor, with the parts tied to the
    fused weight; attention with other processors (sliced, IP-adapter, an extension's own)
    is left alone. Returns how many attention modules run fused."""
    from diffusers.models.attention import AttentionModuleMixin
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    count = 0
    for attn in _attention_modules(module):
        if isinstance(attn, AttentionModuleMixin):
            count += _fuse_mixin(attn)
            continue
        if type(attn.processor) is not AttnProcessor2_0:
            continue
        if getattr(attn, "add_q_proj", None) is not None:
            continue  # added KV projections: no fused processor for those here
        if not _fused_groups(attn):
            attn.fuse_projections(fuse=True)
            for group in _fused_groups(attn):
                _tie(attn, *group)
        # Already fused but given the plain processor back (an extension restoring the
        # processors it saw before it ran, e.g. IP-Adapter's): use the fused weight again.
        attn.set_processor(FusedAttnProcessor2_0())
        count += 1
    return count


def _fuse_mixin(attn) -> int:
    """A transformer's attention (FluxAttention and its kin): diffusers' own fusion, what
    `fuse_qkv_projections` does per module (to_qkv, plus to_added_qkv for the text stream
    of joint attention; the default processor reads `fused_projections`), with the parts
    tied to the fused weights. Only under the class's default processor: an IP-Adapter's
    processor is left on the plain projections. Returns 1 if `attn` runs fused."""
    if not attn._supports_qkv_fusion or type(attn.processor) is not attn._default_processor_cls:
        return 0
    if not attn.fused_projections:
        attn.fuse_projections()
        for group in _fused_groups(attn):
            _tie(attn, *group)
    return 1


def retie(module: nn.Module) -> int:
    """Re-tie fused projections whose views a device or dtype move broke, from q/k/v."""
    count = 0
    for attn in _attention_modules(module):
        for group in _fused_groups(attn):
            if not _tied(attn, *group):
                _tie(attn, *group)
                count += 1
    return count


# -- compiled forward -------------------------------------------------------------------------


def _clone_out(value):
    """Copy outputs out of the CUDA-graph pool: the next replay overwrites them, and some
    schedulers (PLMS) keep the model output of earlier steps."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_clone_out(v) for v in value)
    if isinstance(value, dict):
        # diffusers' BaseOutput is an OrderedDict dataclass: rebuild it through its fields.
        cloned = {k: _clone_out(v) for k, v in value.items()}
        try:
            return type(value)(**cloned)
        except TypeError:
            return cloned
    return value


class CompiledForward:
    """Replaces `module.forward` (an instance attribute, so named_modules, config and LoRA
    module tables are untouched). `active` False runs the original eager forward."""

    def __init__(self, module: nn.Module, mode: str = "reduce-overhead", backend="inductor"):
        self.eager = module.forward
        self.cudagraphs = mode == "reduce-overhead" and backend == "inductor"
        if backend != "inductor":
            mode = None  # modes are inductor's; other backends (tests) take none
        self.compiled = torch.compile(self.eager, mode=mode, backend=backend, dynamic=False)
        self.active = True
        self.shapes: set[tuple] = set()
        self.failed = ""  # why compiling broke; the module then stays eager for good

    def __call__(self, *args, **kwargs):
        if not self.active or self.failed:
            return self.eager(*args, **kwargs)
        try:
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
                return _clone_out(self.compiled(*args, **kwargs))
            return self.compiled(*args, **kwargs)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            # A compiler bug must not cost the artist the image: forward is pure, so the
            # same call runs eagerly and this module never tries to compile again.
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning("torch.compile failed, running eager from now on: %s", self.failed)
            return self.eager(*args, **kwargs)


def compile_module(module: nn.Module, mode: str | None = None, backend: str | None = None):
    mode, backend = mode or COMPILE_MODE, backend or COMPILE_BACKEND
    current = module.__dict__.get("forward")
    if isinstance(current, CompiledForward):
        return current
    wrapper = CompiledForward(module, mode, backend)
    module.forward = wrapper
    return wrapper


def compiled(module: nn.Module) -> CompiledForward | None:
    current = module.__dict__.get("forward")
    return current if isinstance(current, CompiledForward) else None


def compile_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


# -- per pass ----------------------------------------------------------------------------


def _controlnets(pipe) -> list[nn.Module]:
    net = getattr(pipe, "controlnet", None)
    if net is None:
        return []
    inner = getattr(net, "nets", None)
    return list(inner) if inner is not None else [net]


def shape_key(pipe, width: int, height: int, batch: int) -> tuple:
    """What a compiled UNet graph is specialised on: latent size, UNet batch (doubled by
    CFG) and how many ControlNets feed it. Prompts longer than 75 tokens widen the text
    embeddings and compile once more, unreported."""
    return (width, height, batch, len(_controlnets(pipe)))


@contextlib.contextmanager
def applied(pipe, ctx, width: int, height: int, batch: int, reporter=None) -> Iterator[Decision]:
    """Apply the fast path to a pipeline built for one pass (the cached model's modules are
    changed once and stay changed; compile is switched per pass)."""
    info = ctx.device
    dtype_ok = info.dtype in (torch.float16, torch.bfloat16)
    unet = pipe.components[spec_for(ctx.model.family).denoiser]  # UNet or transformer
    wrapper = compiled(unet)
    key = shape_key(pipe, width, height, batch)
    capability = None
    if info.device.type == "cuda":
        capability = torch.cuda.get_device_capability(info.device)
    decision = decide(
        info.device.type,
        enabled=is_enabled(),
        width=width,
        height=height,
        batch=batch,
        low_vram=ctx.low_vram,
        seamless=ctx.plan.seamless != "none",  # the pass's axes (an SD upscale tile's own)
        shapes_compiled=len(wrapper.shapes) if wrapper else 0,
        new_shape=wrapper is None or key not in wrapper.shapes,
        compile_available=info.device.type == "cuda"
        and dtype_ok
        and compile_available()
        and not (wrapper is not None and wrapper.failed),
        capability=capability,
        sdpa_env=os.environ.get(SDPA_ENV),
    )
    if decision.reasons and info.device.type == "cuda":
        log.info("fast path: eager for this pass: %s", "; ".join(decision.reasons))

    nets = _controlnets(pipe)
    modules = [unet, *nets]
    if decision.channels_last:
        for m in [*modules, getattr(pipe, "vae", None)]:
            if m is not None:
                set_channels_last(m)
    if decision.fuse_qkv:
        for m in modules:
            fuse_qkv(m)
    for m in modules:  # always: a tie broken by a move must never run a stale fused weight
        retie(m)

    wrappers: list[CompiledForward] = []
    if decision.compile:
        setup_compile_cache()
        wrappers = [compile_module(m) for m in modules]
        if key not in wrappers[0].shapes and reporter is not None:
            reporter.state("compiling", f"compiling for {width}x{height}, batch {batch}")
    saved = {id(w): w.active for m in modules if (w := compiled(m)) is not None}
    for m in modules:
        w = compiled(m)
        if w is not None:
            w.active = decision.compile

    with contextlib.ExitStack() as stack:
        if decision.sdpa:
            stack.enter_context(_sdpa(decision.sdpa))
        try:
            yield decision
            if decision.compile:
                fresh = key not in wrappers[0].shapes
                for w in wrappers:
                    w.shapes.add(key)
                if fresh:
                    save_artifacts()
        finally:
            for m in modules:
                w = compiled(m)
                if w is not None and id(w) in saved:
                    w.active = saved[id(w)]


_SDPA_NAMES = {
    "cudnn": "CUDNN_ATTENTION",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "math": "MATH",
}


def _sdpa(order: tuple[str, ...]):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [getattr(SDPBackend, _SDPA_NAMES[n]) for n in order if n in _SDPA_NAMES]
    if not backends:
        return contextlib.nullcontext()
    try:
        return sdpa_kernel(backends, set_priority=True)
    except TypeError:  # torch < 2.6: no priority order, only the allowed set
        return sdpa_kernel(backends)


def describe(decision: Decision) -> dict[str, Any]:
    return {
        "channels_last": decision.channels_last,
        "fuse_qkv": decision.fuse_qkv,
        "compile": decision.compile,
        "sdpa": list(decision.sdpa),
        "reasons": list(decision.reasons),
    }
