"""Tiny random-weight upscalers in the layouts artists' files have, for tests and the
Quickstart: ROOT/models/ESRGAN/

    tiny-esrgan-4x.safetensors         original ESRGAN keys (model.0, model.1.sub.N.RDB1..)
    tiny-realesrgan-x4.safetensors     Real-ESRGAN / BasicSR keys (conv_first, body.N.rdb1..)
    tiny-realesrgan-x2.safetensors     the same body on a 2x pixel-unshuffled input (x2plus)
    tiny-compact-x4.safetensors        Real-ESRGAN Compact (SRVGGNet, realesr-general-x4v3)
    tiny-realesrgan-x4-ema.pth         a plain-weights pickle {"params_ema": ...}, as
                                       Real-ESRGAN releases its .pth files
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from dreamwire.backend.tiny.build import METADATA, SEED
from dreamwire.backend.tiny.files import save_tensors, state_of

FEAT, GROW, BLOCKS = 8, 4, 1


def esrgan(upsamples: int = 2, unshuffle: int = 1, offset: int = 0, noise: float = 0.05):
    from dreamwire.backend.upscalers.arch import RRDBNet

    torch.manual_seed(SEED + 300 + offset)
    net = RRDBNet(3, 3, FEAT, BLOCKS, GROW, upsamples, unshuffle)
    near_identity(net, noise)
    return net.eval()


def compact(offset: int = 0, noise: float = 0.05):
    from dreamwire.backend.upscalers.arch import SRVGGNetCompact

    torch.manual_seed(SEED + 350 + offset)
    net = SRVGGNetCompact(3, 3, FEAT, 2, 4)
    with torch.no_grad():
        # The net adds its output to the nearest-upsampled input: small weights keep the
        # result a noisy copy of the picture.
        for p in net.parameters():
            if p.ndim == 4:
                p.mul_(noise / 0.05 * 0.2)
    return net.eval()


def near_identity(net, noise: float = 0.0) -> None:
    """RRDBNet weights that make it a nearest-neighbour upscaler, plus `noise` times random
    weights in the dense blocks and the trunk conv: with noise=0 the output is exactly the
    nearest upsample of the input (each RGB channel carried on feature channel c through
    conv_first, the up convs, conv_hr and conv_last as a 1 at the kernel centre; the
    trunk's conv_body is 0, so the blocks add nothing; LeakyReLU keeps the >= 0 values)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("body.") or name.startswith("conv_body."):
                p.copy_(torch.randn_like(p) * noise)
            else:
                p.zero_()
        f = net.unshuffle
        for c in range(3):
            # An unshuffled input holds f*f sub-pixels per channel (c*f*f .. ): average them.
            for s in range(f * f):
                net.conv_first.weight[c, c * f * f + s, 1, 1] = 1.0 / (f * f)
            for i in range(1, net.upsamples + 1):
                getattr(net, f"conv_up{i}").weight[c, c, 1, 1] = 1.0
            net.conv_hr.weight[c, c, 1, 1] = 1.0
            net.conv_last.weight[c, c, 1, 1] = 1.0


_NEW_RDB = re.compile(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$")


def to_old_layout(state: dict[str, torch.Tensor], upsamples: int) -> dict[str, torch.Tensor]:
    """BasicSR names to the original ESRGAN "model.N" names (the inverse of the loader's
    renaming; written out here so the two are checked against each other)."""
    blocks = 1 + max(int(m.group(1)) for k in state if (m := _NEW_RDB.match(k)))
    top = {"conv_first": 0, "conv_hr": 3 * upsamples + 2, "conv_last": 3 * upsamples + 4}
    top.update({f"conv_up{i}": 3 * i for i in range(1, upsamples + 1)})
    out = {}
    for key, value in state.items():
        layer, kind = key.rsplit(".", 1)
        if m := _NEW_RDB.match(key):
            block, rdb, conv, kind = m.groups()
            out[f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0.{kind}"] = value
        elif layer == "conv_body":
            out[f"model.1.sub.{blocks}.{kind}"] = value
        else:
            out[f"model.{top[layer]}.{kind}"] = value
    return out


def build(root: Path | str) -> dict[str, Path]:
    folder = Path(root) / "models" / "ESRGAN"
    folder.mkdir(parents=True, exist_ok=True)
    old = esrgan(offset=0)
    written = {
        "tiny-esrgan-4x": save_tensors(
            to_old_layout(state_of(old), 2), folder / "tiny-esrgan-4x.safetensors", METADATA
        ),
        "tiny-realesrgan-x4": save_tensors(
            state_of(esrgan(offset=1)), folder / "tiny-realesrgan-x4.safetensors", METADATA
        ),
        "tiny-realesrgan-x2": save_tensors(
            state_of(esrgan(unshuffle=2, offset=2)),
            folder / "tiny-realesrgan-x2.safetensors",
            METADATA,
        ),
        "tiny-compact-x4": save_tensors(
            state_of(compact()), folder / "tiny-compact-x4.safetensors", METADATA
        ),
    }
    pth = folder / "tiny-realesrgan-x4-ema.pth"
    torch.save({"params_ema": state_of(esrgan(offset=3))}, pth)
    written["tiny-realesrgan-x4-ema"] = pth
    return written
