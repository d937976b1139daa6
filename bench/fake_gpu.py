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

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

BLOCK = 512  # the caching allocator's rounding for every block


def _round(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


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
        for item in tensors_or_modules:
            if isinstance(item, torch.nn.Module):
                tensors = [*item.parameters(), *item.buffers()]
            else:
                tensors = [item]
            for t in tensors:
                self._add(t)
        return self.current - before

    def reset_peak(self) -> None:
        self.peak = self.current

    def _add(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type != self.device_type:
            return
        st = t.untyped_storage()
        key = id(st)
        ref = self._refs.get(key)
        if ref is not None and ref() is st:
            return
        n = _round(st.nbytes())
        self._refs[key] = weakref.ref(st, lambda _r, k=key, n=n: self._free(k, n))
        self.current += n
        self.peak = max(self.peak, self.current)

    def _free(self, key: int, n: int) -> None:
        self._refs.pop(key, None)
        self.current -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket.__name__)
        self.ops[name] = self.ops.get(name, 0) + 1
        for t in tree_leaves(out):
            self._add(t)
        return out


@contextlib.contextmanager
def fake_cuda() -> Iterator[FakeTensorMode]:
    """Fake CUDA tensors on a machine without a GPU (modules come from `on_fake_cuda`)."""
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        yield mode


def on_fake_cuda(module: torch.nn.Module) -> torch.nn.Module:
    """A meta-built module as uninitialised fake CUDA weights (call inside `fake_cuda()`;
    set the dtype on the meta module before: converting fake weights cannot swap them)."""
    return module.to_empty(device="cpu").eval().requires_grad_(False)


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
