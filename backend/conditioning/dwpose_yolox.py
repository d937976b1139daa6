"""DWPose's person detector: YOLOX-L (yolox_l.onnx) as the DWPose annotators run it
(annotator/openpose/cv_ox_det.py in A1111's sd-webui-controlnet, dwpose/dw_onnx/cv_ox_det.py
in comfyui_controlnet_aux; the two are the same code, taken from YOLOX's ONNX demo).

- letterbox: the picture resized by r = min(640 / h, 640 / w) (cv2 INTER_LINEAR, to
  int(w * r) x int(h * r)) into the top-left of a 640 x 640 canvas of grey 114, channels
  first, float32 0..255 (no normalisation; the picture's own RGB order, as both feed it);
- decoding: the 8400 rows are the 80x80, 40x40, 20x20 grids of strides 8, 16, 32, row-major
  per grid; centre = (out + cell) * stride, size = exp(out) * stride;
- score = objectness * class probability; class-aware NMS (IoU > 0.45 suppressed, boxes
  scoring <= 0.1 dropped first, areas with YOLOX's "+1" pixel convention); then persons
  (class 0) scoring > 0.3 are kept, boxes scaled back by 1 / r.
"""

from __future__ import annotations

import cv2
import numpy as np

INPUT_SIDE = 640
STRIDES = (8, 16, 32)
PAD_VALUE = 114
NMS_IOU = 0.45
NMS_SCORE = 0.1
KEEP_SCORE = 0.3
PERSON = 0


def letterbox(rgb: np.ndarray, side: int = INPUT_SIDE) -> tuple[np.ndarray, float]:
    """3 x side x side float32 and the resize ratio r."""
    h, w = rgb.shape[:2]
    r = min(side / h, side / w)
    padded = np.full((side, side, 3), PAD_VALUE, np.uint8)
    nw, nh = int(w * r), int(h * r)
    padded[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def decode(out: np.ndarray, side: int = INPUT_SIDE) -> np.ndarray:
    """The network's (anchors, 5 + classes) rows with centres and sizes in input pixels."""
    grids, strides = [], []
    for stride in STRIDES:
        n = side // stride
        xv, yv = np.meshgrid(np.arange(n), np.arange(n))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out = np.array(out, dtype=np.float32, copy=True)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Greedy single-class NMS (YOLOX's numpy one): indices kept, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(overlap <= iou)[0] + 1]
    return keep


def person_boxes(out: np.ndarray, ratio: float) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 in picture pixels from one image's network output."""
    rows = decode(out)
    cx, cy, bw, bh = rows[:, :4].T
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) / ratio
    # Per-class NMS then "class 0 only" (the reference's order) is NMS on class 0 alone.
    scores = rows[:, 4] * rows[:, 5 + PERSON]
    valid = scores > NMS_SCORE
    boxes, scores = boxes[valid], scores[valid]
    keep = [i for i in nms(boxes, scores) if scores[i] > KEEP_SCORE]
    # Computed in the network's float32, handed on as float64: the reference's NMS joins the
    # boxes to float64 class indices, and the keypoints' float noise (which decides int()
    # pixel positions in the drawing) follows from that.
    return boxes[keep].astype(np.float64).reshape(-1, 4)


def detect(session, rgb: np.ndarray) -> np.ndarray:
    """Person boxes in an RGB uint8 picture through an onnxruntime session of yolox_l.onnx."""
    image, ratio = letterbox(rgb)
    name = session.get_inputs()[0].name
    out = session.run(None, {name: image[None]})[0]
    return person_boxes(out[0], ratio)
