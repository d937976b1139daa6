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

# ESRGAN's dense blocks always grow by 32 channels (spandrel reads no other growth).
FEAT, GROW, BLOCKS = 8, 32, 1


def esrgan(
    upsamples: int = 2, unshuffle: int = 1, offset: int = 0, noise: float = 0.05
) -> dict[str, torch.Tensor]:
    """A Real-ESRGAN / BasicSR-layout RRDBNet state dict (conv_first, body.N.rdbR.convC,
    conv_body, conv_upI, conv_hr, conv_last) that is a nearest-neighbour upscaler plus
    `noise` times random weights in the dense blocks and the trunk conv: with noise=0 the
    output is exactly the nearest upsample of the input (each RGB channel carried on
    feature channel c as a 1 at the kernel centre; conv_body is 0, so the blocks add
    nothing; LeakyReLU keeps the >= 0 values). `unshuffle` 2 / 4: Real-ESRGAN's x2 / x1,
    whose input is pixel-unshuffled first (their f*f sub-pixels are averaged here)."""
    gen = torch.Generator().manual_seed(SEED + 300 + offset)

    def conv(out_ch: int, in_ch: int) -> dict[str, torch.Tensor]:
        return {"weight": torch.zeros(out_ch, in_ch, 3, 3), "bias": torch.zeros(out_ch)}

    f = unshuffle
    layers = {"conv_first": conv(FEAT, 3 * f * f)}
    for b in range(BLOCKS):
        for r in (1, 2, 3):
            for c in range(1, 6):
                out_ch = FEAT if c == 5 else GROW
                layers[f"body.{b}.rdb{r}.conv{c}"] = conv(out_ch, FEAT + (c - 1) * GROW)
    layers["conv_body"] = conv(FEAT, FEAT)
    for i in range(1, upsamples + 1):
        layers[f"conv_up{i}"] = conv(FEAT, FEAT)
    layers["conv_hr"] = conv(FEAT, FEAT)
    layers["conv_last"] = conv(3, FEAT)
    for name, params in layers.items():
        if name.startswith("body.") or name == "conv_body":
            for p in params.values():
                p.copy_(torch.randn(p.shape, generator=gen) * noise)
    for c in range(3):
        for s in range(f * f):
            layers["conv_first"]["weight"][c, c * f * f + s, 1, 1] = 1.0 / (f * f)
        for i in range(1, upsamples + 1):
            layers[f"conv_up{i}"]["weight"][c, c, 1, 1] = 1.0
        layers["conv_hr"]["weight"][c, c, 1, 1] = 1.0
        layers["conv_last"]["weight"][c, c, 1, 1] = 1.0
    return {f"{n}.{k}": v for n, params in layers.items() for k, v in params.items()}


def compact(offset: int = 0, noise: float = 0.05) -> dict[str, torch.Tensor]:
    """Real-ESRGAN Compact (SRVGGNet, body.N) built as spandrel's own class. The net adds
    its output to the nearest-upsampled input: small weights keep the result a noisy copy
    of the picture."""
    from dreamwire.backend.library.spandrel_support import spandrel

    spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(SEED + 350 + offset)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=FEAT, num_conv=2, upscale=4)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 4:
                p.mul_(noise / 0.05 * 0.2)
    return state_of(net)


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
    written = {
        "tiny-esrgan-4x": save_tensors(
            to_old_layout(esrgan(offset=0), 2), folder / "tiny-esrgan-4x.safetensors", METADATA
        ),
        "tiny-realesrgan-x4": save_tensors(
            esrgan(offset=1), folder / "tiny-realesrgan-x4.safetensors", METADATA
        ),
        "tiny-realesrgan-x2": save_tensors(
            esrgan(unshuffle=2, offset=2), folder / "tiny-realesrgan-x2.safetensors", METADATA
        ),
        "tiny-compact-x4": save_tensors(
            compact(), folder / "tiny-compact-x4.safetensors", METADATA
        ),
    }
    pth = folder / "tiny-realesrgan-x4-ema.pth"
    torch.save({"params_ema": esrgan(offset=3)}, pth)
    written["tiny-realesrgan-x4-ema"] = pth
    return written


def other_archs() -> dict[str, dict[str, torch.Tensor]]:
    """Tiny random upscalers of other architectures, built as spandrel's own classes so the
    files have the real key layouts: {file stem: state dict}. Sizes are the smallest that
    spandrel's detection still reads as the architecture."""
    from dreamwire.backend.library.spandrel_support import spandrel

    spandrel()
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(SEED + 380)
    nets = {
        "tiny-span-x4": SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4),
        "tiny-omnisr-x2": OmniSR(num_feat=8, block_num=1, window_size=4, res_num=1, up_scale=2),
        "tiny-dat-x2": DAT(
            img_size=16,
            embed_dim=16,
            split_size=[2, 4],
            depth=[1],
            num_heads=[2],
            expansion_factor=2.0,
            upscale=2,
        ),
        "tiny-swinir-x2": SwinIR(
            img_size=16,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            window_size=4,
            mlp_ratio=2.0,
            upscale=2,
            upsampler="pixelshuffle",
        ),
    }
    return {name: state_of(net.eval()) for name, net in nets.items()}
