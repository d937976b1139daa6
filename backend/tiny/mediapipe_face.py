"""A tiny MediaPipe face_landmarker.task in the real format: a zip bundle of
face_detector.tflite and face_landmarks_detector.tflite (what MediaPipe's model maker
writes; face_blendshapes.tflite and the geometry metadata are optional and left out), each
a TFLite flatbuffer written through the TFLite schema bindings the mediapipe package ships
(mediapipe.tasks.metadata.schema_py_generated), so it builds only where mediapipe is.

Both networks answer with constants: uint8 picture -> CAST -> MEAN -> MUL 0 -> ADD table,
so the picture flows through the graph but what MediaPipe's graph must find is planted.
Neither file has TFLite metadata, so MediaPipe configures them as its legacy models
(face_detector_graph.cc, image_tensor_specs.cc): uint8 inputs (a float input would need
NormalizationOptions metadata), and
  face_detector.tflite            [1, 128, 128, 3] -> raw boxes [1, 896, 16], scores
                                  [1, 896, 1]: the short-range BlazeFace decoding (SSD
                                  anchors on strides 8, 16, 16, 16; x, y, w, h then six
                                  keypoints, in 128-pixel units from the anchor; sigmoid
                                  scores);
  face_landmarks_detector.tflite  [1, 256, 256, 3] -> landmarks [1, 1, 1, 1434] (478 x, y,
                                  z in crop pixels), face presence logit [1, 1, 1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DET_SIDE = 128
ANCHORS = 896
DET_COORDS = 16  # box (x, y, w, h) + 6 keypoints (x, y)
MESH_SIDE = 256
MESH_POINTS = 478
SURE = 10.0  # a logit whose sigmoid is 0.99995
NEVER = -10.0


@dataclass(frozen=True)
class Planted:
    """The faces: each detector box (centre x, y and side, normalised to the picture, which
    should be square so the boxes are too), the first the most certain, and the 478
    landmarks normalised to the crop the landmark network sees (x right, y down), the same
    in every crop."""

    boxes: tuple[tuple[float, float, float], ...]
    landmarks: np.ndarray  # 478 x 2


def _schema():
    from mediapipe.tasks.metadata import schema_py_generated as fb

    return fb


def _tensor(fb, name: str, shape, dtype: int, buffer: int = 0):
    t = fb.TensorT()
    t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer
    return t


class _AlignedBuffer:
    """A TFLite Buffer whose bytes start on a 16-byte boundary, as TFLite's converter
    writes them (an unaligned one is copied at load, with a warning)."""

    def __init__(self, fb, data: np.ndarray):
        self.fb, self.data = fb, data

    def Pack(self, builder):  # noqa: N802 (the flatbuffers object API's name)
        builder.StartVector(1, len(self.data), 16)
        builder.head -= len(self.data)
        builder.Bytes[builder.head : builder.head + len(self.data)] = self.data.tobytes()
        data = builder.EndVector()
        self.fb.BufferStart(builder)
        self.fb.BufferAddData(builder, data)
        return self.fb.BufferEnd(builder)


def _op(fb, code: int, inputs, outputs, options_type: int, options):
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = code, list(inputs), list(outputs)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def constant_model(side: int, outputs: list[tuple[str, np.ndarray]]) -> bytes:
    """A TFLite model: a uint8 [1, side, side, 3] picture in, each named float32 table out
    (its shape as given), each the picture's mean times 0 plus the table."""
    import flatbuffers

    fb = _schema()
    f32 = fb.TensorType.FLOAT32
    buffers = [fb.BufferT()]  # buffer 0 is TFLite's empty sentinel

    def const(array: np.ndarray) -> int:
        buffers.append(_AlignedBuffer(fb, np.ascontiguousarray(array).view(np.uint8).ravel()))
        return len(buffers) - 1

    tensors = [
        _tensor(fb, "image", (1, side, side, 3), fb.TensorType.UINT8),
        _tensor(fb, "image_f", (1, side, side, 3), f32),
        _tensor(fb, "axes", (3,), fb.TensorType.INT32, const(np.array([1, 2, 3], np.int32))),
        _tensor(fb, "mean", (1,), f32),
        _tensor(fb, "zero", (1,), f32, const(np.zeros(1, np.float32))),
        _tensor(fb, "nothing", (1,), f32),
    ]
    codes = []
    for builtin in (fb.BuiltinOperator.CAST, fb.BuiltinOperator.MEAN, fb.BuiltinOperator.MUL):
        codes.append(fb.OperatorCodeT())
        codes[-1].builtinCode = codes[-1].deprecatedBuiltinCode = builtin
        codes[-1].version = 1
    add = fb.OperatorCodeT()
    add.builtinCode = add.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    add.version = 1
    codes.append(add)

    cast = fb.CastOptionsT()
    cast.inDataType, cast.outDataType = fb.TensorType.UINT8, f32
    mean = fb.ReducerOptionsT()
    mean.keepDims = False
    ops = [
        _op(fb, 0, [0], [1], fb.BuiltinOptions.CastOptions, cast),
        _op(fb, 1, [1, 2], [3], fb.BuiltinOptions.ReducerOptions, mean),
        _op(fb, 2, [3, 4], [5], fb.BuiltinOptions.MulOptions, fb.MulOptionsT()),
    ]
    outs = []
    for name, table in outputs:
        table = np.asarray(table, np.float32)
        tensors.append(_tensor(fb, f"{name}_table", table.shape, f32, const(table)))
        tensors.append(_tensor(fb, name, table.shape, f32))
        outs.append(len(tensors) - 1)
        add_options = fb.AddOptionsT()
        ops.append(
            _op(fb, 3, [5, outs[-1] - 1], [outs[-1]], fb.BuiltinOptions.AddOptions, add_options)
        )

    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], outs, ops
    graph.name = "main"
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [graph]
    model.buffers, model.description = buffers, "dreamwire tiny constant model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def detector_tables(planted: Planted) -> tuple[np.ndarray, np.ndarray]:
    """The raw boxes and score logits that decode to the planted boxes alone: box i on
    anchor 2 i, the first anchor of cell i of the stride-8 grid's top row (centre
    ((i + 0.5) / 16, 0.5 / 16), fixed size 1); scores SURE, SURE - 1, ..."""
    cells = DET_SIDE // 8
    boxes = np.zeros((1, ANCHORS, DET_COORDS), np.float32)
    scores = np.full((1, ANCHORS, 1), NEVER, np.float32)
    for i, (cx, cy, s) in enumerate(planted.boxes):
        ax, ay = (i + 0.5) / cells, 0.5 / cells
        # The keypoints: both eyes level (keypoints 0 and 1 set the face's rotation, here
        # 0), then nose, mouth and the ears.
        keypoints = [(cx - s / 4, cy - s / 6), (cx + s / 4, cy - s / 6), (cx, cy)]
        keypoints += [(cx, cy + s / 4), (cx - s / 2, cy), (cx + s / 2, cy)]
        row = [cx - ax, cy - ay, s, s]
        for x, y in keypoints:
            row += [x - ax, y - ay]
        boxes[0, 2 * i] = np.array(row) * DET_SIDE
        scores[0, 2 * i] = SURE - i
    return boxes, scores


def landmark_tables(planted: Planted) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(planted.landmarks, np.float64).reshape(MESH_POINTS, 2) * MESH_SIDE
    xyz = np.concatenate([pts, np.zeros((MESH_POINTS, 1))], axis=1)
    return xyz.reshape(1, 1, 1, MESH_POINTS * 3), np.full((1, 1, 1, 1), SURE)


def save(path: Path, planted: Planted) -> Path:
    """The bundle at `path`, written by MediaPipe's own bundler (model maker's: stored
    entries, each aligned so TFLite can map the models in place)."""
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils

    boxes, scores = detector_tables(planted)
    points, presence = landmark_tables(planted)
    models = {
        "face_detector.tflite": constant_model(
            DET_SIDE, [("regressors", boxes), ("classificators", scores)]
        ),
        "face_landmarks_detector.tflite": constant_model(
            MESH_SIDE, [("landmarks", points), ("presence", presence)]
        ),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_asset_bundle_utils.create_model_asset_bundle(models, str(path))
    return path
