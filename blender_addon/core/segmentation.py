"""Objects and materials -> ADE20K classes, and ID-pass images -> segmentation maps.

The artist picks a class per object or per material (a custom property, see
CLASS_PROPERTY); a material's class wins over its object's, so one mesh can carry
several classes. Without a choice, the object's or material's name is tried as a class
name ("Floor", "tree.003", "Sky_dome" all resolve), then the default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from dreamwire.shared.imaging import ade20k

# Custom property on bpy objects and materials holding a class name or id.
CLASS_PROPERTY = "dreamwire_seg_class"


def resolve(value) -> int | None:
    """A class id from a property value (name, id, or '' / None for no choice)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return ade20k.class_id(value)


def guess_from_name(name: str) -> int | None:
    """Try the name itself, then its words (suffixes such as '.001' dropped)."""
    base = re.sub(r"\.\d+$", "", name or "")
    cid = ade20k.class_id(base)
    if cid is not None:
        return cid
    words = [w for w in re.split(r"[^A-Za-z]+", base) if w]
    words_lower = [w.lower() for w in words]
    # Two-word classes first ("coffee table"), then single words.
    for a, b in zip(words_lower, words_lower[1:], strict=False):
        cid = ade20k.class_id(f"{a} {b}")
        if cid is not None:
            return cid
    for w in words_lower:
        cid = ade20k.class_id(w)
        if cid is not None:
            return cid
    return None


def class_for(explicit, name: str, guess_names: bool = True) -> int | None:
    cid = resolve(explicit)
    if cid is None and guess_names:
        cid = guess_from_name(name)
    return cid


def label_map(
    object_index: np.ndarray,
    material_index: np.ndarray | None,
    object_classes: Mapping[int, int | None],
    material_classes: Mapping[int, int | None] | None = None,
    default: int | None = None,
) -> np.ndarray:
    """Class ids per pixel (-1: nothing) from object and material index passes.

    object_index / material_index hold the pass indices the capture assigned (0 =
    background); the mappings give each index its class (None: no class).
    """
    oi = np.rint(np.asarray(object_index, dtype=np.float64)).astype(np.int64)
    labels = np.full(oi.shape, -1, dtype=np.int32)
    lut_size = int(oi.max()) + 1 if oi.size else 1
    lut = np.full(max(lut_size, 1), -1, dtype=np.int32)
    for idx, cid in object_classes.items():
        if 0 < idx < len(lut):
            lut[idx] = (
                default if cid is None and default is not None else (-1 if cid is None else cid)
            )
    labels = lut[np.clip(oi, 0, len(lut) - 1)]
    labels[oi <= 0] = -1
    if material_index is not None and material_classes:
        mi = np.rint(np.asarray(material_index, dtype=np.float64)).astype(np.int64)
        mlut = np.full(max(int(mi.max()) + 1, 1), -1, dtype=np.int32)
        for idx, cid in material_classes.items():
            if 0 < idx < len(mlut) and cid is not None:
                mlut[idx] = cid
        mat = mlut[np.clip(mi, 0, len(mlut) - 1)]
        use = (mat >= 0) & (oi > 0)
        labels = np.where(use, mat, labels)
    return labels


def segmentation_image(labels: np.ndarray) -> np.ndarray:
    return ade20k.colorize(labels)


def label_table(
    n_objects: int,
    n_materials: int,
    object_classes: Mapping[int, int | None],
    material_explicit: Mapping[int, int | None] | None = None,
    material_guess: Mapping[int, int | None] | None = None,
    default: int | None = None,
) -> np.ndarray:
    """Class id for every (object index, material index) pair, as an (n_objects + 1) x
    (n_materials + 1) int32 table (-1: nothing): the precedence a capture applies per
    pixel, worked out once per pair instead of per pixel. Per pair: the material's
    explicit class, then the object's class, then the class guessed from the material's
    name, then `default`; object index 0 (background) is always -1."""
    obj = np.full(n_objects + 1, -1, dtype=np.int32)
    for idx, cid in object_classes.items():
        if 0 < idx <= n_objects and cid is not None:
            obj[idx] = cid
    table = np.repeat(obj[:, None], n_materials + 1, axis=1)
    for classes, fill_only in ((material_explicit, False), (material_guess, True)):
        for idx, cid in (classes or {}).items():
            if 0 < idx <= n_materials and cid is not None:
                col = table[:, idx]
                col[col < 0 if fill_only else slice(None)] = cid
    if default is not None:
        table[table < 0] = default
    table[0] = -1
    return table


def lookup(table: np.ndarray, object_index: np.ndarray, material_index: np.ndarray):
    """Per-pixel values of a per-(object, material) table (see label_table), e.g. the
    labels or their colours. Indices below 0 count as 0 (background / no material); size
    the table to the largest index present."""
    n_obj, n_mat = table.shape[:2]
    key = np.clip(object_index, 0, n_obj - 1).astype(np.intp)
    key *= n_mat
    key += np.clip(material_index, 0, n_mat - 1)
    # np.take, not table[key]: fancy indexing of 3-byte colour rows is 5x slower.
    return np.take(table.reshape(n_obj * n_mat, *table.shape[2:]), key, axis=0)
