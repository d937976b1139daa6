"""What an upscaler file holds: its key layout, renamed to arch.py's parameter names, and
the network's shape read from the tensors.

Layouts seen in the wild (ESRGAN family):
  old ESRGAN   model.0 / model.1.sub.N.RDB1.conv1.0 / model.1.sub.NB / model.3, 6 (up) /
               model.8 (hr) / model.10 (last); a 2**n x model has n upsample convs at
               model.3, 6, .., 3n, then hr at 3n+2 and last at 3n+4
  BSRGAN       conv_first / RRDB_trunk.N.RDB1.conv1 / trunk_conv / upconv1,2 / HRconv / conv_last
  Real-ESRGAN  conv_first / body.N.rdb1.conv1 / conv_body / conv_up1,2 / conv_hr / conv_last
               (BasicSR, often wrapped in {"params_ema": ...})
  Compact      body.0 (conv) / body.1 (PReLU) / ... / body.K (last conv): SRVGGNetCompact
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dreamwire.shared.errors import DreamwireError, ErrorCode

if TYPE_CHECKING:  # the library reads headers with this module without loading torch
    import torch

_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_BSRGAN_RDB = re.compile(r"RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")
_NEW_RDB = re.compile(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")
_UPCONV = re.compile(r"(?:upconv|conv_up)(\d)\.(weight|bias)$")
_COMPACT = re.compile(r"body\.(\d+)\.weight$")

# Markers of other upscaler architectures, as spandrel tells them apart; checked in order.
_OTHER_ARCHES = (
    ("HAT", (".conv_block.cab.", "overlap_attn")),
    ("DAT", ("before_RG", ".attn.attns.")),
    ("SwinIR", ("residual_group.blocks.", "patch_embed", "conv_after_body.weight")),
    ("ESRGAN+", (".conv1x1.",)),
    ("SPAN", ("block_1.c1_r",)),
    ("OmniSR", ("residual_layer.",)),
    ("SCUNet", ("m_head.", "m_down1.")),
    ("RealCUGAN", ("unet1.",)),
    ("GFPGAN", ("stylegan_decoder.",)),
    ("CodeFormer", ("ft_layers.",)),
    ("Compact (SRVGGNet) without PReLU", ("body.0.weight",)),
)


@dataclass(frozen=True)
class NetSpec:
    """Enough to build the module: which net and its sizes."""

    arch: str  # "ESRGAN" (RRDBNet) or "Compact" (SRVGGNetCompact)
    in_ch: int
    out_ch: int
    feat: int
    blocks: int = 0  # RRDBs (ESRGAN) or middle convs (Compact)
    grow: int = 0
    upsamples: int = 0
    unshuffle: int = 1
    scale: int = 4  # native factor


def unwrap(data, name: str = "upscaler") -> dict[str, torch.Tensor]:
    """The flat tensor dict: BasicSR's {"params_ema": ..} / {"params": ..} wrappers and
    {"state_dict": ..} taken off, DataParallel's "module." prefix dropped."""
    for _ in range(3):
        if not isinstance(data, dict):
            break
        inner = next((data[k] for k in ("params_ema", "params", "state_dict") if k in data), None)
        if not isinstance(inner, dict):
            break
        data = inner
    import torch

    if not isinstance(data, dict) or not data:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{name} holds no weights")
    state = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = str(key)
        state[key[7:] if key.startswith("module.") else key] = value
    if not state:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{name} holds no tensors")
    return state


def guess_arch(state: dict) -> str:
    """A name for the architecture of a state dict, for messages ("ESRGAN", "SwinIR"...)."""
    keys = list(state)
    if "model.0.weight" in state and any(_OLD_RDB.match(k) for k in keys):
        return "ESRGAN"
    if "conv_first.weight" in state and any(
        _NEW_RDB.match(k) or _BSRGAN_RDB.match(k) for k in keys
    ):
        return "ESRGAN"
    if _is_compact(state):
        return "Compact"
    for name, markers in _OTHER_ARCHES:
        if any(m in k for k in keys for m in markers):
            return name
    return "unknown"


def _is_compact(state: dict) -> bool:
    idx = [int(m.group(1)) for k in state if (m := _COMPACT.match(k))]
    return (
        bool(idx)
        and all(k.startswith("body.") for k in state)
        and "body.1.weight" in state
        and state["body.1.weight"].ndim == 1
    )


def to_new_layout(state: dict) -> dict[str, torch.Tensor]:
    """Old ESRGAN and BSRGAN keys renamed to BasicSR's (arch.RRDBNet's) names."""
    if "model.0.weight" not in state and "RRDB_trunk.0.RDB1.conv1.weight" not in state:
        return dict(state)
    out: dict = {}
    if "model.0.weight" in state:
        trunk = max(int(m.group(1)) for k in state if (m := _OLD_TRUNK.match(k)))
        tops = sorted({int(m.group(1)) for k in state if (m := _OLD_TOP.match(k))})
        # After model.0 and the trunk (model.1): [upsample, conv, lrelu] per 2x, then
        # hr conv, lrelu, last conv. So the last index is 3n + 4 for n upsamples.
        last = tops[-1]
        ups = (last - 4) // 3
        names = {0: "conv_first", 3 * ups + 2: "conv_hr", last: "conv_last"}
        names.update({3 * i: f"conv_up{i}" for i in range(1, ups + 1)})
        if set(tops) != set(names):
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"ESRGAN file with layers model.{tops} does not have the old ESRGAN layout",
            )
        for key, value in state.items():
            if m := _OLD_RDB.match(key):
                block, rdb, conv, kind = m.groups()
                out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
            elif m := _OLD_TRUNK.match(key):
                if int(m.group(1)) == trunk:
                    out[f"conv_body.{m.group(2)}"] = value
            elif m := _OLD_TOP.match(key):
                out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
            else:
                out[key] = value  # left for load_state_dict to report
        return out
    for key, value in state.items():
        if m := _BSRGAN_RDB.match(key):
            block, rdb, conv, kind = m.groups()
            key = f"body.{block}.rdb{rdb}.conv{conv}.{kind}"
        elif m := _UPCONV.match(key):
            key = f"conv_up{m.group(1)}.{m.group(2)}"
        else:
            key = {
                "trunk_conv.weight": "conv_body.weight",
                "trunk_conv.bias": "conv_body.bias",
            }.get(key, key)
            key = key.replace("HRconv.", "conv_hr.")
        out[key] = value
    return out


def spec_of(state: dict, name: str = "upscaler") -> tuple[NetSpec, dict[str, torch.Tensor]]:
    """The net a state dict describes and its weights under arch.py's names; anything but
    ESRGAN (RRDBNet) and Compact is refused with the architecture it looks like."""
    kind = guess_arch(state)
    if kind == "Compact":
        return _compact_spec(state), dict(state)
    if kind != "ESRGAN":
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name} looks like a {kind} upscaler; Dreamwire runs ESRGAN / Real-ESRGAN "
            "(RRDBNet) and Real-ESRGAN Compact (SRVGGNet) models",
        )
    new = to_new_layout(state)
    try:
        first, last = new["conv_first.weight"], new["conv_last.weight"]
        grow = new["body.0.rdb1.conv1.weight"].shape[0]
    except KeyError as exc:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{name} lacks {exc.args[0]}") from exc
    blocks = 1 + max(int(m.group(1)) for k in new if (m := _NEW_RDB.match(k)))
    upsamples = sum(1 for k in new if _UPCONV.match(k) and k.endswith(".weight"))
    out_ch, in_all = last.shape[0], first.shape[1]
    # Real-ESRGAN x2 / x1: the input is pixel-unshuffled by 2 / 4 (4 / 16 times the channels).
    unshuffle = 1
    for f in (2, 4):
        if in_all == out_ch * f * f:
            unshuffle = f
    in_ch = in_all // unshuffle**2
    if 2**upsamples % unshuffle:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"{name}: {upsamples} upsamples with unshuffle {unshuffle}"
        )
    spec = NetSpec(
        "ESRGAN",
        in_ch,
        out_ch,
        first.shape[0],
        blocks,
        grow,
        upsamples,
        unshuffle,
        2**upsamples // unshuffle,
    )
    return spec, new


def _compact_spec(state: dict) -> NetSpec:
    convs = sorted(
        int(m.group(1)) for k in state if (m := _COMPACT.match(k)) and state[k].ndim == 4
    )
    first, last = state[f"body.{convs[0]}.weight"], state[f"body.{convs[-1]}.weight"]
    in_ch, feat = first.shape[1], first.shape[0]
    out_ch = in_ch
    scale = math.isqrt(last.shape[0] // out_ch)
    return NetSpec("Compact", in_ch, out_ch, feat, len(convs) - 2, scale=scale)


class _Shape:
    """A tensor's shape without its data, for telling an architecture from a header."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(self.shape)


def describe(shapes: dict[str, list[int]]) -> str:
    """A short label for a file from its tensors' shapes (a safetensors header): "ESRGAN
    4x", "Compact 4x", or the name of an architecture Dreamwire does not run."""
    state = {k: _Shape(v) for k, v in shapes.items()}
    try:
        spec, _ = spec_of(state)
    except (DreamwireError, KeyError, ValueError, IndexError):
        return guess_arch(state)
    return f"{spec.arch} {spec.scale}x"
