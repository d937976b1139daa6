"""How a model is named: the same file may be called "sub/Model.safetensors [a1b2c3d4]"
by A1111's list, "Model" by an artist, "sub/Model" by the backend's library. One rule for
every side that compares such names (the backend's checks, both hosts).

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

# Suffixes of model files, longest first so ".safetensors" is never cut as ".s...".
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".gguf", ".pth", ".bin", ".pt")


def strip_suffix(name: str) -> str:
    """The name without a model file's suffix ("Model.safetensors" -> "Model"); other dots
    stay ("sd_xl_base_1.0" is a name, not a file of type ".0")."""
    low = name.lower()
    for suffix in MODEL_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def stem(name: str) -> str:
    """The part every spelling of a model's name shares: no A1111 hash ("[a1b2c3d4]"), no
    folders (either slash), no file suffix, lower case."""
    base = (name or "").split(" [")[0].strip().replace("\\", "/").rsplit("/", 1)[-1]
    return strip_suffix(base).lower()


def same_model(a: str, b: str) -> bool:
    return bool(a) and bool(b) and stem(a) == stem(b)
