"""A checkpoint's denoiser config read from files, without loading the model.

What a ControlNet, T2I-Adapter or IP-Adapter must match (the UNet's widths and blocks, a Flux
transformer's) is in the denoiser's diffusers config, and loading builds that config from
files the library already knows: a diffusers folder's own `unet/` or `transformer/`
config, else the catalog's config for the file's architecture. Reading it here lets a job's
control units be checked at plan time, before any weight is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library.entries import ModelEntry
from dreamwire.backend.library.flux_loading import config_arch
from dreamwire.backend.library.flux_parts import is_flux_file


def _candidates(entry: ModelEntry, component: str) -> list[Path]:
    path = Path(entry.path)
    out = [path / component / "config.json"] if path.is_dir() else []
    arch = entry.arch or ""
    # A Flux file loads with its own arch's configs, else a base arch's (flux_loading): the
    # widths the file's shapes may override (blocks, input channels) are none a ControlNet
    # is matched on.
    names = [config_arch(arch)] if is_flux_file(entry) else [arch]
    # A variant the catalog has no configs for (depth, ip2p input channels) shares its base's
    # widths, which is all the welcome's served-types table reads.
    names += [arch.split("-in")[0], arch.removesuffix("-ip2p").removesuffix("-depth")]
    for name in dict.fromkeys(names):
        try:
            out.append(catalog.config_dir(name) / component / "config.json")
        except KeyError:
            continue
    return out


def denoiser_config(entry: ModelEntry, component: str) -> dict | None:
    """The `component` ("unet" or "transformer", the family spec's denoiser) config of a
    checkpoint entry; None when no file says it."""
    for cfg_path in _candidates(entry, component):
        try:
            return json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            continue
    return None
