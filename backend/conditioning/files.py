"""Reading conditioning files (LoRA, embeddings, ControlNet headers) without trusting them.

safetensors files are parsed by the safetensors library (no code runs). Pickled files
(.pt/.ckpt/.bin) go through torch.load(weights_only=True), PyTorch's restricted unpickler:
it builds tensors, dicts, lists and plain values and refuses any other global, so a file
that tries to run code is refused instead of executed.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

SAFETENSORS = (".safetensors",)
PICKLED = (".pt", ".pth", ".ckpt", ".bin")
MAX_HEADER = 100 * 2**20


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file: {key: {dtype, shape, data_offsets}, __metadata__}."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than a safetensors header")
            (size,) = struct.unpack("<Q", raw)
            if size > MAX_HEADER:
                raise ValueError(f"header claims {size} bytes")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        return header
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{path.name} is not a readable safetensors file ({exc})"
        ) from None


def shapes(path: Path) -> dict[str, tuple[int, ...]]:
    return {
        k: tuple(v["shape"])
        for k, v in read_header(path).items()
        if k != "__metadata__" and isinstance(v, dict) and "shape" in v
    }


def metadata(path: Path) -> dict[str, str]:
    meta = read_header(path).get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def load_tensors(path: Path, what: str) -> dict[str, Any]:
    """All tensors of a conditioning file, on the CPU, as a (possibly nested) dict."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        read_header(path)  # clear message for truncated / non-safetensors files
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"{what} {path.name} is corrupt: {exc}"
            ) from None
    if suffix in PICKLED:
        return load_pickled(path, what)
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED, f"{what} {path.name}: unsupported file type {suffix!r}"
    )


def load_pickled(path: Path, what: str) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch raises UnpicklingError both for refused globals and for garbage; tell them apart.
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise DreamwireError(
                ErrorCode.MODEL_UNSAFE,
                f"{what} {path.name} is a pickle that wants to run code or build objects other "
                "than tensors, so it was not loaded; convert it to .safetensors from a trusted "
                "source",
            ) from None
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{what} {path.name} is corrupt ({text.splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{what} {path.name} is corrupt or not a torch file ({exc})"
        ) from None


def load_weights(model: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """`state` into `model`, every weight accounted for (transformers' position_ids buffers
    may be in a file or not); MODEL_CORRUPT otherwise."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]
    if missing or unexpected:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{what}: {len(missing)} missing and {len(unexpected)} unexpected weights",
        )


def library_entries(library, kind: str) -> dict[str, Path]:
    """name -> path for one kind of the model library (LoRA, ControlNet, embedding)."""
    if library is None:
        return {}
    from dreamwire.backend.library import Kind

    return {e.name: Path(e.path) for e in library.entries(Kind(kind))}


def mtime(path: Path) -> float:
    """A file's modification time for cache keys (0 when it is gone)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
