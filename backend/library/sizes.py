"""How many parameters loading a checkpoint puts in memory, read from headers only.

The backend's admission check (engine/admission.py) needs a model's weight size before it
accepts a job, and must not load the model to learn it. A single-file checkpoint's header
lists every tensor's shape; only the parts a pipeline loads count (EMA copies and training
leftovers in the same file are never loaded). A diffusers folder's components each have
their own header; a component stored as a pickle counts by its file size, two bytes a
parameter (fp16), which can only over-count a fp32 file. A Flux transformer file counts its
own tensors only (its text encoders and VAE are other files); a GGUF file counts parameters,
not its smaller packed bytes; an NF4 file counts its packed weights twice (two a byte).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from dreamwire.backend.library.entries import Format, ModelEntry
from dreamwire.backend.library.gguf_header import read_gguf_header
from dreamwire.backend.library.nf4 import NF4_MARKER
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.backend.library.weight_formats import FP8, FULL, GGUF, WeightFormat

# Key prefixes of what a pipeline loads from a single-file SD1/SD2/SDXL checkpoint, and
# from ComfyUI's all-in-one Flux checkpoints (text_encoders., vae.).
LOADED_PREFIXES = (
    "model.diffusion_model.",
    "first_stage_model.",
    "cond_stage_model.",
    "conditioner.",
    "text_encoders.",
    "vae.",
)
FOLDER_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")


def checkpoint_params(entry: ModelEntry) -> int | None:
    """Parameters the pipeline for `entry` loads; None when the files cannot tell (a pickle
    checkpoint, an unreadable header)."""
    return _per_version(entry, _params, None)


def _per_version(entry: ModelEntry, read, missing):
    """`read(path, format, mtime, size)`, cached by it per file version: a submit must not
    re-read a header every time. `missing` when the file is gone."""
    try:
        stat = entry.path.stat()
    except OSError:
        return missing
    return read(entry.path, entry.format, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _params(path: Path, fmt: Format, _mtime_ns: int, _size: int) -> int | None:
    from dreamwire.shared.errors import DreamwireError

    try:
        if fmt == Format.SAFETENSORS:
            # A transformer-only file (Flux in BFL's layout) has no prefix: all of it loads.
            return _header_params(path, LOADED_PREFIXES) or _header_params(path)
        if fmt == Format.GGUF:
            return _header_params(path, reader=read_gguf_header)
        if fmt == Format.DIFFUSERS:
            return _folder_params(path)
    except DreamwireError:
        return None  # a damaged file fails clearly when it is loaded
    return None


def checkpoint_weights(entry: ModelEntry) -> WeightFormat:
    """The format the checkpoint's denoiser is stored in (what the loader keeps in memory):
    a GGUF file's most common quantization among its matrices, fp8 where a safetensors
    file's matrices are mostly fp8 (kept fp8 by layerwise casting), else the engine's own
    dtype. Read from the header only."""
    return _per_version(entry, _weights, FULL)


@lru_cache(maxsize=64)
def _weights(path: Path, fmt: Format, _mtime_ns: int, _size: int) -> WeightFormat:
    from dreamwire.shared.errors import DreamwireError

    if fmt not in (Format.SAFETENSORS, Format.GGUF):
        return FULL  # a diffusers folder or a pickle loads at the engine's dtype
    try:
        header = (read_gguf_header if fmt == Format.GGUF else read_header)(path)
    except DreamwireError:
        return FULL
    counts: dict[str, int] = {}
    for info in header.tensors.values():
        if len(info["shape"]) == 2:  # the linear layers: what a quantized file packs
            counts[info["dtype"]] = counts.get(info["dtype"], 0) + 1
    if not counts:
        return FULL
    dtype = max(counts, key=counts.get)
    if fmt == Format.GGUF:
        return GGUF.get(dtype, FULL)
    return FP8 if dtype.startswith("F8") else FULL


def _header_params(path: Path, prefixes: tuple[str, ...] = ("",), reader=read_header) -> int:
    header = reader(path)
    total = 0
    for key, info in header.tensors.items():
        if not key.startswith(prefixes) or _nf4_statistic(key, header.tensors):
            continue
        count = math.prod(int(d) for d in info["shape"])
        # bitsandbytes packs two 4-bit weights a byte; loading expands them.
        total += 2 * count if key + NF4_MARKER in header.tensors else count
    return total


def _nf4_statistic(key: str, tensors: dict) -> bool:
    """An NF4 weight's scales, code tables or packed state (`X.weight.absmax` ...)."""
    weight, found, _ = key.rpartition(".weight.")
    return bool(found) and weight + ".weight" + NF4_MARKER in tensors


# NF4 files are expanded when loaded (library/nf4.py), so they cost full precision.
NF4_EXPANDED = (
    "NF4 (bitsandbytes), expanded to full precision on load: no memory saving on this machine"
)


def stored_label(entry: ModelEntry) -> str | None:
    """How a checkpoint's weights are stored, as the artist is told it (`models list`,
    welcome.model_weights): "GGUF Q4_K", fp8, NF4 expanded; None for full precision."""
    if entry.detail.get("nf4"):
        return NF4_EXPANDED
    weights = checkpoint_weights(entry)
    return weights.label if weights.quantized else None


def _folder_params(folder: Path) -> int | None:
    total = 0
    for component in FOLDER_COMPONENTS:
        part = folder / component
        if not part.is_dir():
            continue
        files = sorted(f for f in part.iterdir() if f.name.endswith(WEIGHT_SUFFIXES))
        safe = [f for f in files if f.suffix == ".safetensors"]
        if safe:
            # diffusers loads one variant: the fp32 file if both are there, else the only one.
            plain = [f for f in safe if ".fp16." not in f.name] or safe
            total += sum(_header_params(f) for f in plain)
        elif files:
            total += files[0].stat().st_size // 2
    return total or None
