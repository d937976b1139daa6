"""Marigold models (prs-eth's diffusers folders): which PBR maps each one makes, and loading.

prs-eth publishes Marigold as diffusers folders (`marigold-iid-appearance-v1-1`,
`marigold-iid-lighting-v1-1`, `marigold-normals-v1-1`, ...). The folder's model_index.json
names its pipeline class and, for the intrinsic-image (IID) models, `target_properties`:
the targets the UNet predicts in order (`albedo`, `material`, `shading` ...), a `stack`
target's sub-targets per channel (the appearance model's material is roughness in R and
metallicity in G) and each one's space (`srgb`, or `linear`, `up_to_scale` where only
ratios are known). What a folder can make is read from there, not from its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library.entries import ModelEntry
from dreamwire.shared.errors import DreamwireError, ErrorCode

INTRINSICS = "MarigoldIntrinsicsPipeline"
NORMALS = "MarigoldNormalsPipeline"
DEPTH = "MarigoldDepthPipeline"  # a depth preprocessor option; it makes no PBR map
PIPELINES = (INTRINSICS, NORMALS, DEPTH)
# Marigold's target names -> Dreamwire's map names (shared/materials.MATERIAL_MAPS).
TARGET_MAPS = {"albedo": "albedo", "roughness": "roughness", "metallicity": "metallic"}


@dataclass(frozen=True)
class MapSource:
    """Where one map comes from in a model's prediction."""

    map: str  # "albedo", "roughness", "metallic" or "normal"
    target: int  # index of the predicted target (IID: target_names' order; normals: 0)
    channel: int | None  # a stack target's channel; None: all three (RGB / xyz)
    linear: bool = False  # an sRGB map predicted in linear light (gamma-encoded on output)


def read_index(folder: Path) -> dict | None:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def is_marigold_folder(folder: Path) -> bool:
    index = read_index(folder)
    return index is not None and index.get("_class_name") in PIPELINES


def map_sources(index: dict) -> tuple[MapSource, ...]:
    """The maps a Marigold folder's model_index.json says its model predicts."""
    cls = index.get("_class_name")
    if cls == NORMALS:
        return (MapSource("normal", 0, None),)
    if cls != INTRINSICS:
        return ()
    props = index.get("target_properties")
    if not isinstance(props, dict) or not isinstance(props.get("target_names"), list):
        return ()
    out: list[MapSource] = []
    for t, target in enumerate(props["target_names"]):
        spec = props.get(target) if isinstance(props.get(target), dict) else {}
        if spec.get("prediction_space") == "stack":
            subs = spec.get("sub_target_names") or []
            for c, sub in enumerate(subs[:3]):
                if sub in TARGET_MAPS:
                    out.append(MapSource(TARGET_MAPS[sub], t, c))
        elif target in TARGET_MAPS and not spec.get("up_to_scale", False):
            # An albedo known only up to scale (none of prs-eth's) is not a base colour.
            linear = spec.get("prediction_space") == "linear"
            out.append(MapSource(TARGET_MAPS[target], t, None, linear))
    return tuple(out)


def entry_sources(entry: ModelEntry) -> tuple[MapSource, ...]:
    index = read_index(entry.path)
    return () if index is None else map_sources(index)


def load(entry: ModelEntry, torch_dtype=None):
    """The entry's folder as its diffusers pipeline (see load_folder)."""
    return load_folder(Path(entry.path), entry.name, torch_dtype)


def load_folder(folder: Path, name: str, torch_dtype=None):
    """The folder as its diffusers pipeline, offline and from safetensors only (a folder
    holding only pickled weights is refused rather than unpickled). A folder with only
    fp16 variant files (`*.fp16.safetensors`, as the hub's fp16 downloads) loads those."""
    import diffusers

    cls = str((read_index(folder) or {}).get("_class_name", ""))
    if cls not in PIPELINES:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name} is not a Marigold IID, normals or depth folder",
        )
    unet = folder / "unet"
    full = any(p for p in unet.glob("*.safetensors") if ".fp16." not in p.name)
    variant = None if full or not any(unet.glob("*.fp16.safetensors")) else "fp16"
    try:
        return getattr(diffusers, cls).from_pretrained(
            str(folder),
            torch_dtype=torch_dtype,
            local_files_only=True,
            use_safetensors=True,
            variant=variant,
        )
    except (OSError, ValueError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"Marigold model {name} cannot be loaded: {exc}"
        ) from None
