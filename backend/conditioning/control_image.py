"""Control images: channels, resizing to the pass size, and the tensors ControlNets read.

Channels. A control image arrives as H x W x 1|3|4 uint8 or H x W float32 (depth):
  * 1 channel is repeated to RGB;
  * float32 H x W is a depth map in ControlNet's convention (0..1, near = 1): it is clipped to
    0..1, scaled to 0..255, rounded, and repeated to RGB;
  * 4 channels: the alpha channel is dropped, except for the inpaint ControlNet, where it is
    the mask (255 = repaint) when the job itself carries no mask, as in the A1111 extension;
  * anything else is INVALID_IMAGE.

Resizing. A control image of another size than the pass is resized with the A1111
ControlNet extension's resize modes (the ControlUnit's resize_mode; default
crop_and_resize, the extension's default):
  * just_resize: stretched to W x H, aspect ratio not kept;
  * crop_and_resize: scaled until it covers W x H (keeping aspect), then centre-cropped;
  * resize_and_fill: scaled until it fits inside W x H (keeping aspect), then centred on a
    background of the median colour of its border.
Interpolation follows the extension's high_quality_resize: nearest for maps of 3 to 199
colours (segmentation, poses), area when shrinking and cubic when enlarging; two-colour
black/white maps (edges, scribbles) are re-binarised with Otsu's threshold afterwards so
lines stay crisp. Hires.fix passes get the same control image resized to the larger size.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

RESIZE_MODES = ("just_resize", "crop_and_resize", "resize_and_fill")


def split_channels(
    image: np.ndarray, what: str = "control image"
) -> tuple[np.ndarray, np.ndarray | None]:
    """(H x W x 3 uint8 RGB, H x W uint8 alpha or None)."""
    if not isinstance(image, np.ndarray):
        raise DreamwireError(ErrorCode.INVALID_IMAGE, f"{what} must be an array")
    if image.dtype == np.float32 and image.ndim == 2:
        if not np.isfinite(image).all():
            raise DreamwireError(
                ErrorCode.INVALID_IMAGE, f"{what}: depth has NaN or infinite values"
            )
        grey = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE,
            f"{what} must be H x W x 1, 3 or 4 uint8 (or H x W float32 depth); got "
            f"{image.dtype} with shape {image.shape}",
        )
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2), None
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3]), np.ascontiguousarray(image[:, :, 3])
    return image, None


def _unique_colours(x: np.ndarray, limit: int = 256) -> int:
    flat = x.reshape(-1, x.shape[2]) if x.ndim == 3 else x.reshape(-1, 1)
    packed = flat.astype(np.uint32) @ (np.array([1, 256, 65536], np.uint32)[: flat.shape[1]])
    return min(len(np.unique(packed)), limit)


def hq_resize(x: np.ndarray, width: int, height: int) -> np.ndarray:
    if x.shape[0] == height and x.shape[1] == width:
        return x
    smaller = width * height < x.shape[0] * x.shape[1]
    colours = _unique_colours(x)
    binary = colours == 2 and x.min() < 16 and x.max() > 240
    if 2 < colours < 200:
        interp = cv2.INTER_NEAREST
    elif smaller:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_CUBIC
    y = cv2.resize(x, (width, height), interpolation=interp)
    if binary:
        grey = y.astype(np.float32).mean(axis=2).clip(0, 255).astype(np.uint8) if y.ndim == 3 else y
        _, grey = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([grey] * 3, axis=2) if x.ndim == 3 else grey
    if x.ndim == 3 and y.ndim == 2:
        y = y[:, :, None]
    return y


def resize(
    image: np.ndarray, width: int, height: int, mode: str, nearest: bool = False
) -> np.ndarray:
    """Resize `image` (H x W x C or H x W) to width x height with an A1111 resize mode."""
    if mode not in RESIZE_MODES:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"unknown resize mode {mode!r}")

    def rs(x, w, h):
        if nearest:
            return cv2.resize(x, (w, h), interpolation=cv2.INTER_NEAREST)
        return hq_resize(x, w, h)

    if image.shape[0] == height and image.shape[1] == width:
        return image
    if mode == "just_resize":
        return rs(image, width, height)
    old_h, old_w = image.shape[:2]
    k_h, k_w = height / old_h, width / old_w
    if mode == "resize_and_fill":
        k = min(k_h, k_w)
        new_w, new_h = int(round(old_w * k)), int(round(old_h * k))
        inner = rs(image, new_w, new_h)
        border = np.concatenate(
            [
                image[0].reshape(-1, *image.shape[2:]),
                image[-1].reshape(-1, *image.shape[2:]),
                image[:, 0].reshape(-1, *image.shape[2:]),
                image[:, -1].reshape(-1, *image.shape[2:]),
            ]
        )
        fill = np.median(border, axis=0).astype(image.dtype)
        out = np.empty((height, width, *image.shape[2:]), image.dtype)
        out[...] = fill
        top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
        out[top : top + new_h, left : left + new_w] = inner[: height - top, : width - left]
        return out
    k = max(k_h, k_w)
    new_w, new_h = int(round(old_w * k)), int(round(old_h * k))
    inner = rs(image, new_w, new_h)
    top, left = max(0, (new_h - height) // 2), max(0, (new_w - width) // 2)
    return np.ascontiguousarray(inner[top : top + height, left : left + width])


def to_tensor(rgb: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
    """1 x 3 x H x W float32 in 0..1, as diffusers' control image processor makes it;
    masked pixels (mask > 127) are set to -1, the inpaint ControlNet's convention."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)).float().div(255.0).permute(2, 0, 1)[None]
    if mask is not None:
        m = torch.from_numpy(np.ascontiguousarray(mask) > 127)[None, None]
        t = torch.where(m.expand_as(t), torch.tensor(-1.0), t)
    return t
