"""Tiny random background-removal ONNX files with rembg's file names, input shapes and
output layout, built with the `onnx` package's helper API (no torch export): the model's
square input (1 x 3 x side x side, side 320 for U2-Net, 1024 for IS-Net and BiRefNet) ->
a random 1 x 1 convolution to one channel -> the first output, 1 x 1 x side x side; the U2-Net
and IS-Net files also give side outputs after it, as those networks' deep supervision does
(rembg reads only the first). The answer is
then a fixed linear function of the normalised input, which a test can work out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.backend.tiny.build import SEED

OPSET = 17


@dataclass(frozen=True)
class Layout:
    file: str
    side: int
    input: str
    outputs: int  # the first is the mask; the rest are side outputs rembg ignores


# Input names as torch.onnx.export names them; whatever the released files call theirs,
# rembg feeds the first input by its own name and reads the first output, as Dreamwire does.
U2NET = Layout("u2net.onnx", 320, "input.1", 7)
U2NETP = Layout("u2netp.onnx", 320, "input.1", 7)
ISNET = Layout("isnet-general-use.onnx", 1024, "input_image", 6)
ISNET_ANIME = Layout("isnet-anime.onnx", 1024, "input_image", 6)
BIREFNET = Layout("BiRefNet-general-epoch_244.onnx", 1024, "input_image", 1)


def weights(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """The 1 x 1 convolution's weight (1 x 3 x 1 x 1) and bias (1,) the file holds."""
    rng = np.random.default_rng(SEED + 900 + layout.side + layout.outputs)
    return rng.uniform(-1, 1, (1, 3, 1, 1)).astype(np.float32), np.array([0.1], np.float32)


def model(layout: Layout):
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights(layout)
    shape = [1, 3, layout.side, layout.side]
    out_shape = [1, 1, layout.side, layout.side]
    names = [f"d{i}" for i in range(layout.outputs)]
    nodes = [helper.make_node("Conv", [layout.input, "w", "b"], [names[0]])]
    # Side outputs: the mask scaled, so they differ from it (a reader taking one of them
    # instead of the first would be caught).
    for i, name in enumerate(names[1:], start=2):
        nodes.append(helper.make_node("Mul", [names[0], f"k{i}"], [name]))
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    inits += [
        numpy_helper.from_array(np.array(float(-i), np.float32), f"k{i}")
        for i in range(2, layout.outputs + 1)
    ]
    graph = helper.make_graph(
        nodes,
        layout.file.removesuffix(".onnx"),
        [helper.make_tensor_value_info(layout.input, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shape) for n in names],
        inits,
    )
    made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    made.ir_version = 8
    return made


def save(folder: Path, layout: Layout) -> Path:
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / layout.file
    onnx.save(model(layout), str(path))
    return path
