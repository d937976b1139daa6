"""Which model families each LoRA file fits, for the welcome's `lora_families`, so a host
lists a checkpoint's own LoRAs first (Krita's LoRA picker and style editor).

Told from the safetensors header alone (key names and shapes; no tensor is read), by the
rules lora.py's reader uses when it applies a file: Qwen-Image's, Z-Image's, Flux.2's,
SD3's and Flux's layer names, then kohya's/diffusers' text-encoder prefixes (two encoders:
SDXL; one: SD1.x/SD2.x), narrowed by the cross-attention width the library's scan read
(identify.addon_family). A file none of these tells (a UNet-only LoRA of a width no family
has, a pickle, a damaged file) is left out: unknown, which hosts show for every model.
Headers are read once per file version (path, size, mtime).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.families import SPECS
from dreamwire.backend.library import Format, ModelEntry
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.shared.errors import DreamwireError

from . import lora_flux2_keys, lora_flux_keys, lora_qwen_keys, lora_sd3_keys, lora_zimage_keys

# Text-encoder key prefixes of the SD-era layouts (lora.py's _KOHYA and _PEFT patterns).
_SDXL_TEXT = ("lora_te1_", "lora_te2_", "text_encoder_2.")
_SD_TEXT = ("lora_te_", "text_encoder.")

# Every key of an SD-era file (kohya's UNet and text-encoder names, diffusers' `unet.` and
# `text_encoder.`) matches this; no transformer family's layer names do (theirs are blocks
# such as double_blocks, joint_blocks, layers, transformer_blocks at the top level). Such a
# file skips the transformer checks: most LoRAs are SD1.x/SDXL, and those checks cost
# ~0.1 s on a 2,000-key file.
_SD_ERA = re.compile(
    r"^(?:lora_unet_(?:input_blocks|output_blocks|middle_block|down_blocks|up_blocks|mid_block)_"
    r"|lora_te[12]?_|unet\.|text_encoder(?:_2)?\.)"
)

_cache: dict[str, tuple[tuple[int, int], str | None]] = {}


def lineage_of(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The LoRA lineage key (LoraLineage.key: "sd", "sdxl", "flux", ...) the key names and
    shapes tell, in lora.from_tensors' order; None when they do not."""
    keys = list(shapes)
    if keys and all(_SD_ERA.match(k) for k in keys):
        return _text_lineage(keys)
    if lora_qwen_keys.is_qwen(keys):
        return "qwen-image"
    # Z-Image before SD3, Flux.2 before SD3 and Flux.1: their names would pass for those.
    if lora_zimage_keys.is_zimage(keys):
        return "zimage"
    if lora_flux2_keys.is_flux2_shapes(shapes):
        return "flux2"
    if lora_sd3_keys.is_sd3(keys):
        return "sd3"
    if lora_flux_keys.is_flux(keys):
        return "flux"
    return _text_lineage(keys)


def _text_lineage(keys: list[str]) -> str | None:
    """An SD-era file's lineage by its text-encoder keys (two encoders: SDXL)."""
    if any(k.startswith(_SDXL_TEXT) for k in keys):
        return "sdxl"
    if any(k.startswith(_SD_TEXT) for k in keys):
        return "sd"
    return None


def _file_lineage(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    version = (st.st_size, st.st_mtime_ns)
    hit = _cache.get(str(path))
    if hit is not None and hit[0] == version:
        return hit[1]
    try:
        header = read_header(path)
        lineage = lineage_of({k: tuple(v["shape"]) for k, v in header.tensors.items()})
    except DreamwireError:
        lineage = None  # damaged: listed as unknown; a job naming it says what is wrong
    _cache[str(path)] = (version, lineage)
    return lineage


def entry_families(entry: ModelEntry) -> list[str]:
    """The family keys (sd1, sdxl, flux, ...) the LoRA file fits, [] when unknown."""
    # The cross-attention width the scan read ("sd1", "tiny-sdxl"): one SD-era family.
    width_family = catalog.family_of(entry.arch) if entry.arch else None
    lineage = _file_lineage(entry.path) if entry.format == Format.SAFETENSORS else None
    if lineage is None:
        return [width_family] if width_family else []
    fits = [key for key, spec in SPECS.items() if spec.lora.key == lineage]
    if width_family in fits:
        return [width_family]  # SD1.x or SD2.x, which share a lineage
    return fits


def lora_families(entries: list[ModelEntry]) -> dict[str, list[str]]:
    """{LoRA name: the family keys it fits} for the LoRAs that tell (the first file of a
    name, as the welcome's `loras` lists it)."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            continue
        seen.add(entry.name)
        if fits := entry_families(entry):
            out[entry.name] = fits
    return out
