"""Peak GPU memory of the real architectures, measured without a GPU.

The modules are built on the meta device and moved to a *fake* CUDA device
(torch._subclasses.FakeTensorMode): every operator runs its real shape and dtype logic,
PyTorch dispatches attention to the kernel it would pick on a GPU, and no memory is touched.
`LiveBytes`, a dispatch mode above the fake mode, sees every tensor an operator returns and
adds its storage to the live total until Python frees it, rounded up as the CUDA caching
allocator rounds blocks. Its peak is what `torch.cuda.max_memory_allocated` would report,
less what the allocator counts that no operator returns: cuBLAS/cuDNN workspaces and
fragmentation. bench/bench_lowvram.py checks it against the H200 reference figures in
shared/bench before trusting it.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

BLOCK = 512  # the caching allocator's rounding for every block


def _round(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _tensors(items, recurse: bool = False) -> list[torch.Tensor]:
    out = []
    for item in items:
        if isinstance(item, torch.nn.Module):
            out += [*item.parameters(recurse=recurse), *item.buffers(recurse=recurse)]
        else:
            out.append(item)
    return out


class LiveBytes(TorchDispatchMode):
    """Live and peak bytes of tensor storages on one device type while the mode is on."""

    def __init__(self, device_type: str = "cpu"):
        super().__init__()
        self.device_type = device_type
        self.current = 0
        self.peak = 0
        self.ops: dict[str, int] = {}
        self._refs: dict[int, weakref.ref] = {}

    def hold(self, *tensors_or_modules) -> int:
        """Count these tensors (or modules' parameters and buffers) as live from now on:
        the weights a plan keeps on the GPU. Returns the bytes added."""
        before = self.current
        for t in _tensors(tensors_or_modules, recurse=True):
            self._add(t)
        return self.current - before

    def reset_peak(self) -> None:
        self.peak = self.current

    def drop(self, *tensors_or_modules) -> int:
        """Stop counting these tensors (or modules' own parameters and buffers): weights
        that leave the GPU while Python still holds them (sequential offload). Returns the
        bytes removed."""
        before = self.current
        for t in _tensors(tensors_or_modules):
            st = t.untyped_storage()
            ref = self._refs.get(id(st))
            if ref is not None and ref() is st:
                del self._refs[id(st)]
                self.current -= _round(st.nbytes())
        return before - self.current

    def _add(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type != self.device_type:
            return
        st = t.untyped_storage()
        key = id(st)
        ref = self._refs.get(key)
        if ref is not None and ref() is st:
            return
        n = _round(st.nbytes())
        self._refs[key] = weakref.ref(st, lambda r, k=key, n=n: self._free(k, n, r))
        self.current += n
        self.peak = max(self.peak, self.current)

    def _free(self, key: int, n: int, ref: weakref.ref) -> None:
        if self._refs.get(key) is ref:  # not dropped before, nor a new storage at that id
            del self._refs[key]
            self.current -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket.__name__)
        self.ops[name] = self.ops.get(name, 0) + 1
        for t in tree_leaves(out):
            self._add(t)
        return out


@dataclass
class Stage:
    name: str
    weights: int  # bytes of weights resident during the stage
    peak: int  # simulated peak bytes (weights included)

    @property
    def activations(self) -> int:
        return self.peak - self.weights

    def calibrated(self, factor: float) -> int:
        return int(self.weights + self.activations * factor)


@contextlib.contextmanager
def one_blend_row(vae):
    """diffusers blends tile seams one pixel row at a time, each row's temporaries freed
    before the next; fake tensors hold no values, so blending the first row alone has the
    same peak, and spares tens of thousands of dispatches per tiled decode."""
    cls = type(vae)

    def blend_v(a, b, extent):
        extent = min(a.shape[2], b.shape[2], extent)
        b[:, :, 0, :] = a[:, :, -extent, :] * 1.0 + b[:, :, 0, :] * 0.0
        return b

    def blend_h(a, b, extent):
        extent = min(a.shape[3], b.shape[3], extent)
        b[:, :, :, 0] = a[:, :, :, -extent] * 1.0 + b[:, :, :, 0] * 0.0
        return b

    vae.blend_v, vae.blend_h = blend_v, blend_h
    try:
        yield
    finally:
        del vae.blend_v, vae.blend_h
    assert vae.blend_v.__func__ is cls.blend_v


def fake_mode() -> FakeTensorMode:
    """A fake CUDA mode to enter (`with mode:`) as often as needed: fake tensors made in
    one mode work only with that mode, so a long-lived set of fake modules keeps its own."""
    return FakeTensorMode(allow_non_fake_inputs=True)


@contextlib.contextmanager
def fake_cuda() -> Iterator[FakeTensorMode]:
    """Fake CUDA tensors on a machine without a GPU (modules come from `on_fake_cuda`)."""
    with fake_mode() as mode:
        yield mode


def on_fake_cuda(module: torch.nn.Module) -> torch.nn.Module:
    """A meta-built module as uninitialised fake CUDA weights (call inside `fake_cuda()`;
    set the dtype on the meta module before: converting fake weights cannot swap them).
    Tied parameters (T5's embedding, held by `shared` and the encoder) stay one tensor:
    to_empty alone would give each holder its own copy."""
    names: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    module = module.to_empty(device="cpu").eval().requires_grad_(False)
    for first, *others in (n for n in names.values() if len(n) > 1):
        tied = module.get_parameter(first)
        for name in others:
            owner, _, attr = name.rpartition(".")
            setattr(module.get_submodule(owner), attr, tied)
    return module


def gib(n: int | float) -> float:
    return n / 2**30


# -- the real architectures, from the catalog configs ---------------------------------------


def _config(arch: str, component: str) -> dict:
    from dreamwire import catalog

    return json.loads((catalog.config_dir(arch) / component / "config.json").read_text())


def meta_unet(arch: str, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(_config(arch, "unet")).to(dtype)


def meta_vae(arch: str, dtype: torch.dtype):
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(_config(arch, "vae")).to(dtype)


def meta_controlnet(unet, dtype: torch.dtype):
    from diffusers import ControlNetModel

    with torch.device("meta"):
        return ControlNetModel.from_unet(unet).to(dtype)


def meta_text_encoders(arch: str, dtype: torch.dtype) -> list[torch.nn.Module]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from dreamwire import catalog

    encoders = []
    for name, cls in (
        ("text_encoder", CLIPTextModel),
        ("text_encoder_2", CLIPTextModelWithProjection),
    ):
        if not (catalog.config_dir(arch) / name / "config.json").exists():
            continue
        with torch.device("meta"):
            encoders.append(cls(CLIPTextConfig.from_dict(_config(arch, name))).to(dtype))
    return encoders
