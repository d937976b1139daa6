"""Turning what the restricted unpickler returned into a flat tensor dict for safetensors."""

from __future__ import annotations

from dreamwire.shared.errors import DreamwireError, ErrorCode


def flatten_state_dict(data) -> dict:
    import torch

    # Lightning/LDM checkpoints wrap the weights: {"state_dict": {...}, "global_step": ...}.
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, "the file holds no dict of tensors")
    out: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, torch.Tensor):
            # safetensors refuses shared or non-contiguous storage; copies are cheap next to safety.
            out[prefix] = value.detach().contiguous().clone()
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)

    walk("", data)
    if not out:
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, "the file holds no tensors")
    return out
