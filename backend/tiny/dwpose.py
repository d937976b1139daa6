"""Tiny random DWPose ONNX files with the released ones' names, inputs and outputs, built
with the `onnx` package's helper API (no torch export):
  yolox_l.onnx          images [1, 3, 640, 640] -> output [1, 8400, 85]
  dw-ll_ucoco_384.onnx  input [batch, 3, 384, 288] -> simcc_x [batch, 133, 576],
                        simcc_y [batch, 133, 768]
Each network is the picture's per-channel mean through a random matrix, broadcast onto a
table: random low values with answers planted in it (a person's box in the detector's
rows, keypoint peaks in the SimCC bins), so what the annotator must find is known while
the real input still moves every output a little."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.backend.tiny.build import SEED

DET_SIDE = 640
ANCHORS = sum((DET_SIDE // s) ** 2 for s in (8, 16, 32))  # 8400
CLASSES = 80
POSE_W, POSE_H = 288, 384
KEYPOINTS = 133
OPSET = 17


@dataclass(frozen=True)
class Planted:
    """Detector rows (anchor index, raw x, y, w, h outputs, objectness, person score) and
    keypoints (index, x bin, y bin, peak value) the tiny models answer with."""

    boxes: tuple[tuple[int, float, float, float, float, float, float], ...] = ()
    peaks: tuple[tuple[int, int, int, float], ...] = ()
    wiggle: float = 0.01  # how far the picture moves the random outputs


def _graph(name: str, inp, outs, tables: list[np.ndarray], weights: list[np.ndarray]):
    """input -> GlobalAveragePool -> [N, 1, 3] -> MatMul(weight) + table, per output."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("GlobalAveragePool", [inp[0]], ["gap"]),
        helper.make_node("Reshape", ["gap", "shape13"], ["gap13"]),
    ]
    inits = [numpy_helper.from_array(np.array([0, 1, 3], np.int64), "shape13")]
    for (out, _), table, weight in zip(outs, tables, weights, strict=True):
        inits += [
            numpy_helper.from_array(weight.astype(np.float32), f"{out}_w"),
            numpy_helper.from_array(table.astype(np.float32), f"{out}_table"),
        ]
        nodes += [
            helper.make_node("MatMul", ["gap13", f"{out}_w"], [f"{out}_mm"]),
            helper.make_node("Add", [f"{out}_mm", f"{out}_table"], [out]),
        ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(inp[0], TensorProto.FLOAT, inp[1])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in outs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def detector(planted: Planted):
    rng = np.random.default_rng(SEED + 800)
    table = np.zeros((1, ANCHORS, 5 + CLASSES), np.float32)
    table[0, :, :4] = rng.uniform(-1, 1, (ANCHORS, 4))
    table[0, :, 4] = rng.uniform(0, 0.15, ANCHORS)  # objectness * class stays under 0.1
    table[0, :, 5:] = rng.uniform(0, 0.5, (ANCHORS, CLASSES))
    for anchor, x, y, w, h, obj, person in planted.boxes:
        table[0, anchor, :6] = (x, y, w, h, obj, person)
    # The picture (0..255) moves scores only, so planted boxes stay where they are put.
    weight = np.zeros((3, 5 + CLASSES), np.float32)
    weight[:, 4:] = rng.uniform(-1, 1, (3, 1 + CLASSES)) * planted.wiggle / 255
    outs = [("output", [1, ANCHORS, 5 + CLASSES])]
    return _graph("yolox_l", ("images", [1, 3, DET_SIDE, DET_SIDE]), outs, [table], [weight])


def pose(planted: Planted):
    rng = np.random.default_rng(SEED + 801)
    tables, weights = [], []
    for bins, axis in ((POSE_W * 2, 1), (POSE_H * 2, 2)):
        table = rng.uniform(-0.2, 0.2, (KEYPOINTS, bins)).astype(np.float32)
        for k, bx, by, peak in planted.peaks:
            table[k, (bx, by)[axis - 1]] = peak
        tables.append(table)
        # The crop is normalised (about -2..2): its mean moves every bin a little.
        weights.append(rng.uniform(-1, 1, (3, bins)) * planted.wiggle)
    outs = [
        ("simcc_x", ["batch", KEYPOINTS, POSE_W * 2]),
        ("simcc_y", ["batch", KEYPOINTS, POSE_H * 2]),
    ]
    return _graph("rtmpose", ("input", ["batch", 3, POSE_H, POSE_W]), outs, tables, weights)


def save(folder: Path, planted: Planted) -> tuple[Path, Path]:
    """Both files in `folder` under their released names."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    det, est = folder / "yolox_l.onnx", folder / "dw-ll_ucoco_384.onnx"
    onnx.save(detector(planted), str(det))
    onnx.save(pose(planted), str(est))
    return det, est
