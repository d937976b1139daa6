"""The model catalog: configs that let single-file checkpoints load offline.

`configs/<arch>/` holds a diffusers-style pipeline folder without weights (model_index.json
and each component's config) for every architecture the library can identify; `index.json`
describes each architecture. The tokenizers are not stored here: the library generates them
from the CLIP BPE vocabulary into a cache (see dreamwire.backend.library.catalog).
This package is plain data plus stdlib code, importable without torch.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"


@lru_cache(maxsize=1)
def index() -> dict:
    """The catalog index: {"archs": {arch: {...}}}."""
    return json.loads((ROOT / "index.json").read_text(encoding="utf-8"))


def archs() -> list[str]:
    return sorted(index()["archs"])


def arch_info(arch: str) -> dict:
    try:
        return index()["archs"][arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(archs())}") from None


def family_of(arch: str | None) -> str:
    """The family key ("sd1", "sd2", "sdxl": dreamwire.shared.families) of an architecture
    the library identified. One the catalog has no entry for (an SDXL refiner, a LoRA's
    "sdxl") takes the family its name starts with; anything else is "sd1", the most common."""
    entries = index()["archs"] | index().get("recognised", {})
    if arch in entries:
        return entries[arch]["family"]
    name = (arch or "").lower().removeprefix("tiny-")
    keys = sorted({a["family"] for a in entries.values()}, key=len, reverse=True)
    return next((k for k in keys if name.startswith(k)), "sd1")


def variant_of(arch: str | None) -> str:
    """A special-purpose checkpoint's variant within its family ("fill", "kontext"), or ""."""
    entry = index()["archs"].get(arch or "")
    return entry.get("variant", "") if entry else ""


def config_dir(arch: str) -> Path:
    """The weightless diffusers config folder for an architecture (no tokenizer files)."""
    arch_info(arch)
    return CONFIGS / arch


def recognised(arch: str | None) -> str | None:
    """The title of an architecture the library identifies but cannot run ("Flux.2 Klein
    4B"), so that loading it is refused by name; None for any other."""
    entry = index().get("recognised", {}).get(arch or "")
    return entry["title"] if entry else None
