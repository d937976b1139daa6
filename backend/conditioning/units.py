"""From a job's ControlUnit to what the ControlNet stack needs: its control tensor at the
pass size and its StackUnit (weight, window, mode).

Special inputs, as the ControlNet 1.1 models were trained:
  * inpaint: the source image with the pixels to repaint set to -1. The mask is the job's
    mask (255 = repaint) when it has one, else the unit image's alpha channel;
  * tile: the source image itself (preprocessor "none"), or shrunk first by
    preprocessor "tile_resample"; every pass resizes it to its own size, so a Hires.fix pass
    sees the low-resolution source enlarged, as the tile model expects;
  * ip2p: the source image, unprocessed;
  * shuffle: preprocessor "shuffle" content-shuffles the reference (seeded by the job's seed,
    so a seed reproduces the image); with preprocessor "none" the image is used as given.
Other preprocessors (canny, scribble, ...) run through backend/conditioning/preprocess.py;
host-made control images (depth, normals, poses, segmentation) use preprocessor "none".
"""

from __future__ import annotations

import numpy as np
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job

from . import control_image, preprocess
from .controlnet import StackUnit
from .controlnet_files import ControlNetInfo

HIRES_SOFT_TYPES = ("canny", "mlsd")  # the extension forces soft injection for these


def check_image(unit: ControlUnit, where: str) -> None:
    control_image.split_channels(unit.image, f"{where} image")


def stack_unit(unit: ControlUnit, info: ControlNetInfo, hires_pass: bool) -> StackUnit:
    kind = info.type or unit.type
    return StackUnit(
        weight=float(unit.weight),
        start=float(unit.start),
        end=float(unit.end),
        mode=unit.control_mode,
        pool=kind == "shuffle" and "v11e" in info.name.lower() or _pools(info),
        force_soft=hires_pass and kind in HIRES_SOFT_TYPES,
    )


def _pools(info: ControlNetInfo) -> bool:
    cfg = info.detail.get("config") or {}
    return bool(cfg.get("global_pool_conditions"))


def control_tensor(
    unit: ControlUnit,
    job: Job,
    width: int,
    height: int,
    info: ControlNetInfo,
    region: tuple[tuple[int, int, int, int], tuple[int, int]] | None = None,
) -> torch.Tensor:
    """The unit's control image as the pass sees it. `region` ((x1, y1, x2, y2), (canvas
    width, canvas height)) is set for "only masked" inpainting: like the A1111 extension, the
    control image is fitted to the whole canvas, then cut to the region being generated."""
    rgb, alpha = control_image.split_channels(unit.image, f"control unit ({unit.type}) image")
    kind = info.type or unit.type
    if unit.preprocessor not in ("none", ""):
        seed = job.seed if job.seed >= 0 else 0
        rgb = preprocess.run(unit.preprocessor, rgb, seed=seed)
    mask = None
    if kind == "inpaint":
        if job.mask is not None:
            mask = job.mask
            if mask.shape[:2] != rgb.shape[:2]:
                # The job's mask is in init-image pixels; bring it onto the unit image.
                mask = control_image.resize(
                    mask, rgb.shape[1], rgb.shape[0], "just_resize", nearest=True
                )
        elif alpha is not None:
            mask = alpha
    mode = unit.resize_mode
    if region is not None:
        (x1, y1, x2, y2), (canvas_w, canvas_h) = region
        rgb = control_image.resize(rgb, canvas_w, canvas_h, mode)[y1:y2, x1:x2]
        if mask is not None:
            mask = control_image.resize(mask, canvas_w, canvas_h, mode, nearest=True)[y1:y2, x1:x2]
        mode = "just_resize"  # the region already has the pass's aspect ratio
    rgb = control_image.resize(rgb, width, height, mode)
    if mask is not None:
        mask = control_image.resize(mask, width, height, mode, nearest=True)
    if rgb.shape[:2] != (height, width):
        raise DreamwireError(
            ErrorCode.INTERNAL, f"control image resized to {rgb.shape}, not {height}x{width}"
        )
    return control_image.to_tensor(np.ascontiguousarray(rgb), mask)
