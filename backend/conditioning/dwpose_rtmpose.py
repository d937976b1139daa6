"""DWPose's whole-body keypoints: RTMPose-L (dw-ll_ucoco_384.onnx, 133 COCO-WholeBody points)
as the DWPose annotators run it (annotator/openpose/cv_ox_pose.py in A1111's
sd-webui-controlnet, dwpose/dw_onnx/cv_ox_pose.py in comfyui_controlnet_aux; mmpose's
RTMPose ONNX demo).

Per person box (x0, y0, x1, y1):
- centre = the box's middle, scale = its size * 1.25, widened or heightened to the model's
  aspect ratio (w / h = 288 / 384);
- the crop: cv2.warpAffine (INTER_LINEAR, black border) by the matrix that takes the centre
  to the input's middle and the scale's width to the input's width (mmpose's
  get_warp_matrix, rotation 0), then (x - mean) / std with ImageNet's 0..255 mean and std
  per channel in the picture's own RGB order;
- SimCC decoding: each keypoint's x and y are the argmax bins of simcc_x / simcc_y divided
  by the split ratio 2; its score the smaller of the two maxima; a score <= 0 puts the
  location at -1;
- back to the picture: k / input_size * scale + centre - scale / 2.
The model's input size is read from the file (288 x 384 for dw-ll_ucoco_384); crops are
run one at a time, as A1111's does (ComfyUI batches them; the result is the same).
"""

from __future__ import annotations

import cv2
import numpy as np

PADDING = 1.25
SPLIT_RATIO = 2.0
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def center_scale(box: np.ndarray, padding: float = PADDING) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = box
    center = np.array([x0 + x1, y0 + y1]) * 0.5
    scale = np.array([x1 - x0, y1 - y0]) * padding
    return center, scale


def fix_aspect(scale: np.ndarray, aspect: float) -> np.ndarray:
    """`scale` grown along one side to width / height == aspect."""
    w, h = scale
    return np.array([w, w / aspect]) if w > h * aspect else np.array([h * aspect, h])


def warp_matrix(center: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """mmpose's get_warp_matrix with rotation 0 and no shift: three point pairs (the centre,
    a point half the scale's width above it, and that vector turned a quarter) in float32."""
    dst_w, dst_h = size
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    for pts in (src, dst):
        direction = pts[0] - pts[1]
        pts[2] = pts[1] + np.r_[-direction[1], direction[0]]
    return cv2.getAffineTransform(src, dst)


def crop(rgb: np.ndarray, box: np.ndarray, size: tuple[int, int]):
    """The normalised H x W x 3 crop of one box, its centre and (aspect-fixed) scale."""
    w, h = size
    center, scale = center_scale(box)
    scale = fix_aspect(scale, w / h)
    image = cv2.warpAffine(
        rgb, warp_matrix(center, scale, size), (int(w), int(h)), flags=cv2.INTER_LINEAR
    )
    return (image - MEAN) / STD, center, scale


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, ratio: float = SPLIT_RATIO):
    """(N, K, 2) keypoints in input pixels and (N, K) scores from (N, K, Wx) / (N, K, Wy)."""
    n, k, _ = simcc_x.shape
    sx, sy = simcc_x.reshape(n * k, -1), simcc_y.reshape(n * k, -1)
    locs = np.stack((sx.argmax(1), sy.argmax(1)), axis=-1).astype(np.float32)
    vals = np.minimum(sx.max(1), sy.max(1))
    locs[vals <= 0.0] = -1
    return locs.reshape(n, k, 2) / ratio, vals.reshape(n, k)


def input_size(session) -> tuple[int, int]:
    """(w, h) of the model's input (N x 3 x h x w)."""
    *_, h, w = session.get_inputs()[0].shape
    if not (isinstance(h, int) and isinstance(w, int)):
        return 288, 384  # dw-ll_ucoco_384's, for a file exported with free sides
    return w, h


def estimate(session, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, K, 2) keypoints in picture pixels and (P, K) scores, one row per box."""
    size = input_size(session)
    name = session.get_inputs()[0].name
    points, scores = [], []
    for box in boxes:
        image, center, scale = crop(rgb, box, size)
        batch = image.transpose(2, 0, 1)[None].astype(np.float32)
        simcc_x, simcc_y = session.run(None, {name: batch})[:2]
        locs, vals = simcc_decode(simcc_x, simcc_y)
        points.append(locs[0] / size * scale + center - scale / 2)
        scores.append(vals[0])
    if not points:
        return np.zeros((0, 0, 2)), np.zeros((0, 0))
    return np.array(points), np.array(scores)
