"""Upscaler files to ready modules: safetensors read directly, pickles (.pth/.pt) only
through the library's weights-only unpickler (a pickle that asks to run code is refused,
never run), and a small cache so a batch or a second Hires.fix reuses the module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library.upscaler_layout import NetSpec, spec_of, unwrap
from dreamwire.backend.upscalers import arch
from dreamwire.shared.errors import DreamwireError, ErrorCode

CACHE_SIZE = 2  # upscalers are small (~65 MB for RRDBNet 23 blocks); keep the last two


@dataclass
class LoadedUpscaler:
    name: str
    spec: NetSpec
    module: torch.nn.Module

    @property
    def scale(self) -> int:
        return self.spec.scale


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


def build(state: dict, name: str = "upscaler") -> tuple[NetSpec, torch.nn.Module]:
    """The module for a state dict (either ESRGAN key layout), weights loaded strictly."""
    spec, weights = spec_of(state, name)
    module = build_net(spec)
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name}: the {spec.arch} weights do not fit the network they describe: "
            + str(exc).splitlines()[0],
        ) from exc
    return spec, module.eval().requires_grad_(False)


_cache: BoundedCache[LoadedUpscaler] = BoundedCache(CACHE_SIZE)


def load(entry, device: torch.device, dtype: torch.dtype) -> LoadedUpscaler:
    """The library entry's module on device in dtype, from the cache when the file has not
    changed since."""
    path = Path(entry.path)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device), dtype)

    def make() -> LoadedUpscaler:
        spec, module = build(read_state(path), path.name)
        return LoadedUpscaler(entry.name, spec, module.to(device=device, dtype=dtype))

    return _cache.get(key, make)[0]


def clear_cache() -> None:
    _cache.clear()


def build_net(spec: NetSpec) -> torch.nn.Module:
    """The untrained network a file's layout describes."""
    if spec.arch == "Compact":
        return arch.SRVGGNetCompact(spec.in_ch, spec.out_ch, spec.feat, spec.blocks, spec.scale)
    return arch.RRDBNet(
        spec.in_ch, spec.out_ch, spec.feat, spec.blocks, spec.grow, spec.upsamples, spec.unshuffle
    )
