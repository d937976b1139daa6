"""Loaded ControlNets and T2I-Adapters: one bounded cache that both kinds share, so that an
artist's next image with the same units does not load them again, and at most `size` of them
stay in memory together."""

from __future__ import annotations

from typing import Any

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.families import spec_for

from . import controlnet_files
from .controlnet_files import ControlNetInfo
from .files import mtime
from .t2i_adapter import AdapterInfo


def denoiser_config(model) -> dict:
    """The loaded base model's UNet or transformer config: what a ControlNet file that
    carries no config of its own is built to mirror."""
    return dict(model.components[spec_for(model.family).denoiser].config)


class NetCache:
    def __init__(self, size: int = 2) -> None:
        self._nets: BoundedCache[Any] = BoundedCache(size)

    def get(self, info: ControlNetInfo | AdapterInfo, model, device) -> Any:
        """The file's model for `model`'s UNet on `device` (DeviceInfo), loaded once."""
        key = (str(info.path), mtime(info.path), str(device.device), str(device.dtype), model.arch)
        unet_config = denoiser_config(model)
        return self._nets.get(
            key, lambda: controlnet_files.load(info, unet_config, device.dtype, device.device)
        )[0]
