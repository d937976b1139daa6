"""The resolution a preprocessor detects at, as sd-webui-controlnet runs it.

The extension (v1.1.45x) gives every preprocessor the unit's "Preprocessor resolution"
(`processor_res`; -1 or out of 64..2048: the preprocessor's default, 512 for all that
Dreamwire runs), and most run on the picture resized to that shorter side
(`resize_image_with_pad`, scripts/utils.py and the legacy processor.py):

    k = res / min(H, W); (H', W') = (round(H * k), round(W * k)) (numpy's round: half to even)
    resized with INTER_CUBIC when k > 1, else INTER_AREA, after HWC3
    edge-padded on the bottom and right to multiples of 64

then cut back to H' x W' (`remove_pad`). The detected map stays at that size; the unit's
resize mode then brings it to the generation size (control_image.resize, the extension's
detectmap_proc). How each preprocessor takes the resolution (`Fit`):
  PADDED   runs on the padded picture, the pad cut off its result (canny, scribble_xdog,
           threshold, lineart_standard and every network annotator: HED, PiDiNet, lineart,
           MiDaS, NormalBAE, OneFormer, MLSD, OpenPose/DWPose, Depth Anything, MediaPipe face)
  RESIZED  runs on the resized picture with the pad already cut (shuffle, whose resolution
           is fixed at 512: its hidden slider's range makes the extension reset any value)
  OWN      takes the resolution itself (t2ia_color_grid's shortest-edge resize)
  NONE     runs at the picture's own size (invert, tile_resample; Marigold, which the
           extension does not have)
The infotext's `Processor Res` is what the extension records: the unit's value, else 512
(shuffle always 512).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import cv2
import numpy as np

from dreamwire.shared.job import MAX_PROCESSOR_RES, MIN_PROCESSOR_RES

DEFAULT = 512


class Fit(enum.Enum):
    PADDED = "padded"
    RESIZED = "resized"
    OWN = "own"
    NONE = "none"


# Dreamwire's preprocessors that are not PADDED.
_FITS = {
    "shuffle": Fit.RESIZED,
    "t2ia_color_grid": Fit.OWN,
    "invert": Fit.NONE,
    "tile_resample": Fit.NONE,
    "t2ia_style_clipvision": Fit.NONE,
    "depth_marigold": Fit.NONE,
    "normal_marigold": Fit.NONE,
}
# Preprocessors whose resolution the extension fixes whatever the unit says.
_FIXED = {"shuffle": DEFAULT}


def fit(name: str) -> Fit:
    return _FITS.get(name, Fit.PADDED)


def resolution(name: str, processor_res: int) -> int:
    """The resolution the extension runs `name` at for a unit's `processor_res`; also what
    its infotext records."""
    if name in _FIXED:
        return _FIXED[name]
    if MIN_PROCESSOR_RES <= processor_res <= MAX_PROCESSOR_RES:
        return int(processor_res)
    return DEFAULT


def pad64(x: int) -> int:
    return int(np.ceil(float(x) / 64.0) * 64 - x)


def resize_with_pad(rgb: np.ndarray, res: int) -> tuple[np.ndarray, tuple[int, int]]:
    """resize_image_with_pad on an RGB uint8 picture: (the padded picture, (H', W'))."""
    h_raw, w_raw = rgb.shape[:2]
    k = float(res) / float(min(h_raw, w_raw))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    h, w = int(np.round(float(h_raw) * k)), int(np.round(float(w_raw) * k))
    img = cv2.resize(rgb, (w, h), interpolation=interpolation)
    padded = np.pad(img, [[0, pad64(h)], [0, pad64(w)], [0, 0]], mode="edge")
    return np.ascontiguousarray(padded), (h, w)


def run_at(
    name: str, fn: Callable[..., np.ndarray], rgb: np.ndarray, processor_res: int, **kw
) -> np.ndarray:
    """`fn` (a preprocessor taking an RGB picture) run on `rgb` as the extension runs `name`
    at the unit's `processor_res`."""
    how, res = fit(name), resolution(name, processor_res)
    if how is Fit.NONE:
        return fn(rgb, **kw)
    if how is Fit.OWN:
        return fn(rgb, res=res, **kw)
    padded, (h, w) = resize_with_pad(rgb, res)
    if how is Fit.RESIZED:
        return fn(np.ascontiguousarray(padded[:h, :w]), **kw)
    return np.ascontiguousarray(fn(padded, **kw)[:h, :w])
