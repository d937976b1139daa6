"""Pickled model files (.ckpt, .pt, .pth, .bin) are programs, not data.

Unpickling runs whatever the file's author put in it, so Dreamwire never unpickles
unrestricted. Checkpoints are refused with instructions to convert; small add-ons and the
`dreamwire models convert` command go through torch's restricted unpickler
(`weights_only=True`), which only rebuilds tensors and plain containers and raises on
anything else.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}


def refuse_pickle(path: Path):
    raise DreamwireError(
        ErrorCode.MODEL_UNSAFE,
        f"{Path(path).name} is a pickled file, which can run arbitrary code when loaded, so "
        "Dreamwire does not load it. Convert it to .safetensors first: "
        f"`dreamwire models convert {path}` (uses torch's restricted weights-only loader) "
        "or download the .safetensors version of the model.",
    )


def safe_torch_load(path: Path) -> dict:
    """Tensors from a pickle through `torch.load(weights_only=True)`; code is refused."""
    import torch

    path = Path(path)
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSAFE,
            f"{path.name} contains more than tensors (its pickle asks to run code or build "
            f"objects), so it was not loaded: {exc}".splitlines()[0],
        ) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{path.name} could not be read: {exc}"
        ) from exc
    return data
