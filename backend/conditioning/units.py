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

A unit with no image (img2img and inpaint jobs) takes the job's picture as the runner laid
it out, grown when outpainting; when outpainting, unit images of the init image's size are
laid out on the grown canvas with the picture, and unit images of the grown canvas's size
are resized as the picture is, the inpaint one masked with the sampler's mask
(on_canvas.py).
"""

from __future__ import annotations

import numpy as np
import torch

from dreamwire.backend.canvas.outpaint import Canvas
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job

from . import control_image, on_canvas, preprocess
from .controlnet import StackUnit
from .controlnet_files import ControlNetInfo
from .unit_file import UnitFile

HIRES_SOFT_TYPES = ("canny", "mlsd")  # the extension forces soft injection for these


def check_image(unit: ControlUnit, where: str) -> None:
    if unit.image is not None:  # None: the job's picture (on_canvas.picture)
        control_image.split_channels(unit.image, f"{where} image")


def stack_unit(unit: ControlUnit, info: UnitFile, hires_pass: bool) -> StackUnit:
    kind = info.type or unit.type
    return StackUnit(
        weight=float(unit.weight),
        start=float(unit.start),
        end=float(unit.end),
        mode=unit.control_mode,
        pool=kind == "shuffle" and "v11e" in info.name.lower() or _pools(info),
        force_soft=hires_pass and kind in HIRES_SOFT_TYPES,
    )


def _pools(info: UnitFile) -> bool:
    if not isinstance(info, ControlNetInfo):
        return False  # only ControlNet folders' configs say global_pool_conditions
    cfg = info.detail.get("config") or {}
    return bool(cfg.get("global_pool_conditions"))


def control_tensor(
    unit: ControlUnit,
    job: Job,
    width: int,
    height: int,
    info: UnitFile,
    region: tuple[tuple[int, int, int, int], tuple[int, int]] | None = None,
    canvas: Canvas | None = None,
    roots: tuple = (),
) -> torch.Tensor:
    """The unit's control image as the pass sees it. `region` ((x1, y1, x2, y2), (canvas
    width, canvas height)) is set for "only masked" inpainting: like the A1111 extension, the
    control image is fitted to the whole canvas, then cut to the region being generated.
    `canvas` is how the runner laid out the job's picture (img2img and inpaint): a unit with
    no image uses that picture, and outpainting keeps unit images of the init image's or
    the grown canvas's size aligned with it (on_canvas.py). `roots`: the library's model
    roots, where preprocessors look for annotator weights (A1111 / ComfyUI installs)."""
    kind = info.type or unit.type
    where = f"control unit ({unit.type})"
    mode = unit.resize_mode
    if unit.image is None:
        rgb, mask = on_canvas.picture(canvas, kind, where)
        rgb = _preprocess(unit, job, rgb, roots)
        mode = "just_resize"  # canvas-sized, resized exactly as the picture is
    else:
        rgb, alpha = control_image.split_channels(unit.image, f"{where} image")
        aligned = on_canvas.aligned(canvas, rgb)
        # Already on the grown canvas: the picture's resize and, for inpaint, the sampler's
        # mask. (Judged before preprocessing: tile_resample shrinks the image.)
        on_grown = on_canvas.canvas_sized(canvas, rgb)
        if aligned and kind in on_canvas.PICTURE_TYPES:
            rgb = canvas.grow_like_picture(rgb)
        rgb = _preprocess(unit, job, rgb, roots)
        if on_grown and kind == "inpaint":
            mask = on_canvas.canvas_mask(canvas, job.mask is not None, alpha)
        else:
            mask = _inpaint_mask(kind, job, rgb, alpha)
        if on_grown:
            mode = "just_resize"
        if aligned:
            if kind not in on_canvas.PICTURE_TYPES:
                rgb, mask = on_canvas.pad_map(canvas, kind, rgb, mask)
            mode = "just_resize"
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
    # Writable: the grown canvas comes from PIL read-only, and torch warns on those.
    return control_image.to_tensor(np.require(rgb, requirements=("C", "W")), mask)


def annotated(job: Job, roots: tuple = ()) -> np.ndarray:
    """A preprocess job's result: the init image through `controls[0]`'s preprocessor, then
    brought back to the init image's size as a unit taking the job's picture is resized
    ("just_resize": the map keeps the picture's aspect)."""
    unit = job.controls[0]
    rgb = _preprocess(unit, job, job.init_image, roots)
    height, width = job.init_image.shape[:2]
    return np.require(control_image.resize(rgb, width, height, "just_resize"), np.uint8, "C")


def _preprocess(unit: ControlUnit, job: Job, rgb: np.ndarray, roots: tuple) -> np.ndarray:
    if unit.preprocessor in ("none", ""):
        return rgb
    seed = job.seed if job.seed >= 0 else 0
    return preprocess.run(
        unit.preprocessor, rgb, roots=roots, processor_res=unit.processor_res, seed=seed
    )


def _inpaint_mask(
    kind: str, job: Job, rgb: np.ndarray, alpha: np.ndarray | None
) -> np.ndarray | None:
    """The inpaint ControlNet's mask on the unit image: the job's mask, else the image's
    alpha. (On an outpainted canvas, on_canvas.pad_map then grows it with the border.)"""
    if kind != "inpaint":
        return None
    if job.mask is None:
        return alpha
    mask = job.mask
    if mask.shape[:2] != rgb.shape[:2]:
        # The job's mask is in init-image pixels; bring it onto the unit image.
        mask = control_image.resize(mask, rgb.shape[1], rgb.shape[0], "just_resize", nearest=True)
    return mask
