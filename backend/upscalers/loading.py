"""Upscaler files to ready spandrel models: safetensors read directly, pickles (.pth/.pt)
only through the library's weights-only unpickler (a pickle that asks to run code is
refused, never run); spandrel gets the tensor dict and never opens the file itself. A small
cache lets a batch or a second Hires.fix reuse the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library.spandrel_support import spandrel
from dreamwire.backend.library.upscaler_layout import runnable, unwrap
from dreamwire.shared.errors import DreamwireError, ErrorCode

CACHE_SIZE = 2  # upscalers are small (~65 MB for RRDBNet 23 blocks); keep the last two


@dataclass
class LoadedUpscaler:
    """A spandrel ImageModelDescriptor: called on 1 x 3 x H x W in [0, 1] (RGB by
    spandrel's convention; Dreamwire may hand it BGR, see run.py), it pads to the model's
    size requirements, runs, clamps to [0, 1] and crops back."""

    name: str
    arch: str
    model: object  # spandrel.ImageModelDescriptor

    @property
    def scale(self) -> int:
        return self.model.scale

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype


def read_state(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"{path.name} could not be read: {exc}"
            ) from exc
    else:
        from dreamwire.backend.library.pickles import safe_torch_load

        data = safe_torch_load(path)
    return unwrap(data, path.name)


def build(state: dict, name: str = "upscaler"):
    """The spandrel model for a tensor dict, weights loaded strictly; MODEL_UNSUPPORTED
    naming the architecture when spandrel knows none or it is not an RGB upscaler."""
    sp = spandrel()
    try:
        descriptor = sp.MAIN_REGISTRY.load(state)
    except sp.UnsupportedModelError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name} is not an upscaler architecture Dreamwire knows (spandrel's list: "
            "ESRGAN, Real-ESRGAN, Compact, SwinIR, Swin2SR, HAT, DAT, OmniSR, SPAN, "
            "RealPLKSR, ATD ...)",
        ) from exc
    except (RuntimeError, KeyError, ValueError, IndexError, AssertionError) as exc:
        # Detected, but the tensors do not fit the network they describe.
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name}: the weights do not fit the upscaler network they look like: "
            + (str(exc).splitlines() or [type(exc).__name__])[0],
        ) from exc
    arch = descriptor.architecture.name
    if not runnable(descriptor):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name} is a {arch} model ({descriptor.purpose}, {descriptor.input_channels} "
            f"-> {descriptor.output_channels} channels); Dreamwire runs RGB image upscalers",
        )
    return descriptor.eval()


_cache: BoundedCache[LoadedUpscaler] = BoundedCache(CACHE_SIZE)


def model_dtype(descriptor, dtype: torch.dtype) -> torch.dtype:
    """`dtype` where the architecture supports it (spandrel says which), else float32."""
    if dtype == torch.float16 and not descriptor.supports_half:
        return torch.float32
    if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
        return torch.float32
    return dtype


def load(entry, device: torch.device, dtype: torch.dtype) -> LoadedUpscaler:
    """The library entry's model on device in dtype, from the cache when the file has not
    changed since."""
    path = Path(entry.path)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device), dtype)

    def make() -> LoadedUpscaler:
        descriptor = build(read_state(path), path.name)
        descriptor = descriptor.to(device=device, dtype=model_dtype(descriptor, dtype))
        return LoadedUpscaler(entry.name, descriptor.architecture.name, descriptor)

    return _cache.get(key, make)[0]


def clear_cache() -> None:
    _cache.clear()
