"""Seamless (tileable) output: circular padding in every UNet and VAE convolution.

Wrapping the padding around the image edges makes the left edge continue the right one
(and/or top/bottom), which is how A1111's "Tiling" option and the asymmetric-tiling
extension make textures repeat. One axis can wrap while the other keeps zero padding.
The patch lives only on the instances for one job and is removed afterwards, so cached
models are left exactly as they were.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def _padded_conv_forward(wrap_x: bool, wrap_y: bool):
    def forward(self: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias):
        ph, pw = self.padding
        x = F.pad(x, (pw, pw, 0, 0), mode="circular" if wrap_x else "constant")
        x = F.pad(x, (0, 0, ph, ph), mode="circular" if wrap_y else "constant")
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    return forward


def _convs(models: Iterable[nn.Module]) -> Iterator[nn.Conv2d]:
    for model in models:
        if model is None:
            continue
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and isinstance(m.padding, tuple) and any(m.padding):
                yield m


@contextlib.contextmanager
def seamless(models: Iterable[nn.Module], axes: str) -> Iterator[int]:
    """Patch the convs of `models` for `axes` ("both", "x", "y"; "none" does nothing).

    Yields the number of patched convolutions.
    """
    if axes == "none":
        yield 0
        return
    wrap_x, wrap_y = axes in ("both", "x"), axes in ("both", "y")
    forward = _padded_conv_forward(wrap_x, wrap_y)
    patched = list(_convs(models))
    for conv in patched:
        conv._conv_forward = types.MethodType(forward, conv)
    try:
        yield len(patched)
    finally:
        for conv in patched:
            del conv._conv_forward
