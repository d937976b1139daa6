"""SDXL's added size conditioning for a training picture, as kohya's sd-scripts compute it
(train_util.py): the picture's original size, the crop's top-left and the bucket's size, each
height first, in the UNet's `time_ids` order (orig h, orig w, crop top, crop left, target h,
target w).

The crop's top-left is kohya's BucketManager.get_crop_ltrb, which follows Stability AI's
preprocessing: the picture scaled to fit inside the bucket (not to cover it), and the
offset of that fitted picture in the bucket. So a picture wider than its bucket gets
crop top > 0 and crop left 0, although the pixels were cut at the sides; a picture of the
bucket's shape gets (0, 0). Dreamwire's buckets are one square of `resolution`."""

from __future__ import annotations

import torch


def crop_ltrb(bucket: tuple[int, int], size: tuple[int, int]) -> tuple[float, ...]:
    """kohya's get_crop_ltrb: `bucket` and `size` are (width, height)."""
    bucket_ar = bucket[0] / bucket[1]
    image_ar = size[0] / size[1]
    if bucket_ar > image_ar:  # the bucket is wider: the heights match
        width, height = bucket[1] * image_ar, bucket[1]
    else:
        width, height = bucket[0], bucket[0] / image_ar
    left = (bucket[0] - width) // 2
    top = (bucket[1] - height) // 2
    return left, top, left + width, top + height


def time_ids(size: tuple[int, int], bucket: tuple[int, int]) -> torch.Tensor:
    """(1, 6) float32 for a picture of `size` trained in `bucket` (both width, height)."""
    ltrb = crop_ltrb(bucket, size)
    values = [size[1], size[0], int(ltrb[1]), int(ltrb[0]), bucket[1], bucket[0]]
    return torch.tensor([values], dtype=torch.float32)
