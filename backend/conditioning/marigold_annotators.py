"""Marigold depth and normals (prs-eth, diffusers' MarigoldDepthPipeline and
MarigoldNormalsPipeline) as control-image preprocessors: `depth_marigold` and
`normal_marigold`, options beside Depth Anything v2 and NormalBAE.

The models are the diffusers folders the materials jobs read (library/marigold.py), found
in each model root's models/Marigold (where the library keeps them) or in an annotator
folder (annotator_files.py), by the pipeline class their model_index.json names. They run
with their own defaults (denoising steps, processing resolution), one ensemble member,
seeded by the job, and their outputs become what ControlNet's models were trained on:
  depth    Marigold's affine-invariant depth is 0 near .. 1 far; the control map is near
           bright, stretched min..max to 0..255 (as the depth annotators write it)
  normals  camera-space unit normals (x right, y up, z towards the viewer) in normalbae's
           colours (shared/imaging/normals.py)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library import annotator_files, marigold
from dreamwire.shared.imaging.normals import normals_to_image

EXAMPLES = {marigold.DEPTH: "marigold-depth-v1-1", marigold.NORMALS: "marigold-normals-v1-1"}


def folders(roots=()) -> list[Path]:
    """Where Marigold folders are looked for, in order."""
    return [Path(r) / "models" / "Marigold" for r in roots] + annotator_files.search_folders(roots)


def find(pipeline: str, roots=()) -> Path:
    """The first folder (by name, in folder order) whose pipeline class is `pipeline`."""
    for parent in folders(roots):
        if not parent.is_dir():
            continue
        for child in sorted(parent.iterdir()):
            index = marigold.read_index(child) if child.is_dir() else None
            if index is not None and index.get("_class_name") == pipeline:
                return child
    from dreamwire.shared.errors import DreamwireError, ErrorCode

    where = "; ".join(str(f) for f in folders(roots))
    raise DreamwireError(
        ErrorCode.PREPROCESSOR_UNAVAILABLE,
        f"this preprocessor needs a Marigold {pipeline} diffusers folder (prs-eth's "
        f"{EXAMPLES[pipeline]}) in one of: {where}. Or send a ready-made control image with "
        "preprocessor 'none'",
    )


_cache: BoundedCache = BoundedCache(1)


def _pipeline(folder: Path):
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    return _cache.get((str(folder), stamp), lambda: marigold.load_folder(folder, folder.name))[0]


def predict(pipe, rgb: np.ndarray, seed: int) -> np.ndarray:
    """The pipeline's prediction for an RGB uint8 image: H x W x 1 depth or x 3 normals."""
    import torch
    from PIL import Image

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.inference_mode():
        out = pipe(Image.fromarray(rgb), generator=generator, output_type="np")
    return np.asarray(out.prediction[0], dtype=np.float32)


def depth_image(depth: np.ndarray) -> np.ndarray:
    near = 1.0 - depth[..., 0]
    lo, hi = float(near.min()), float(near.max())
    scaled = ((near - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2)


def depth_marigold(rgb: np.ndarray, roots=(), seed: int = 0) -> np.ndarray:
    return depth_image(predict(_pipeline(find(marigold.DEPTH, roots)), rgb, seed))


def normal_marigold(rgb: np.ndarray, roots=(), seed: int = 0) -> np.ndarray:
    normals = predict(_pipeline(find(marigold.NORMALS, roots)), rgb, seed)
    return normals_to_image(normals, background=None)
