"""The networks: ESRGAN's RRDBNet (Wang et al. 2018, "ESRGAN: Enhanced Super-Resolution
Generative Adversarial Networks") and Real-ESRGAN's SRVGGNetCompact.

Parameter names follow BasicSR's RRDBNet (conv_first, body.N.rdb1.conv1, conv_body,
conv_up1.., conv_hr, conv_last), the layout Real-ESRGAN ships; the original ESRGAN
"model.N" files are renamed to it on load (library/upscaler_layout.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LRELU = 0.2  # ESRGAN's LeakyReLU slope everywhere in RRDBNet
RESIDUAL = 0.2  # the paper's residual scaling (beta) for dense blocks and RRDBs


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output (dense
    connections); the last one's output, scaled by 0.2, is added to the input."""

    def __init__(self, feat: int, grow: int):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(feat + (i - 1) * grow, grow, 3, 1, 1))
        self.conv5 = nn.Conv2d(feat + 4 * grow, feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = [x]
        for i in range(1, 5):
            conv = getattr(self, f"conv{i}")
            seen.append(F.leaky_relu(conv(torch.cat(seen, 1)), LRELU))
        return self.conv5(torch.cat(seen, 1)) * RESIDUAL + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, residual-scaled again."""

    def __init__(self, feat: int, grow: int):
        super().__init__()
        self.rdb1 = DenseBlock(feat, grow)
        self.rdb2 = DenseBlock(feat, grow)
        self.rdb3 = DenseBlock(feat, grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL + x


class RRDBNet(nn.Module):
    """conv_first -> blocks -> conv_body (+ the trunk's input) -> per 2x: nearest
    upsample + conv + lrelu -> conv_hr + lrelu -> conv_last.

    Real-ESRGAN's x2 and x1 models keep the 4x body and pixel-unshuffle the input first
    (2 or 4): `unshuffle` is that factor, and the native scale is 2**upsamples / unshuffle."""

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        feat: int = 64,
        blocks: int = 23,
        grow: int = 32,
        upsamples: int = 2,
        unshuffle: int = 1,
    ):
        super().__init__()
        self.unshuffle = unshuffle
        self.upsamples = upsamples
        self.conv_first = nn.Conv2d(in_ch * unshuffle**2, feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(feat, grow) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feat, feat, 3, 1, 1)
        for i in range(1, upsamples + 1):
            setattr(self, f"conv_up{i}", nn.Conv2d(feat, feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(feat, out_ch, 3, 1, 1)

    @property
    def scale(self) -> int:
        return 2**self.upsamples // self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.unshuffle > 1:
            # Pixel-unshuffle needs sides divisible by its factor: reflect-pad and crop the
            # result back (as Real-ESRGAN's inference does).
            f = self.unshuffle
            pad_h, pad_w = (-h) % f, (-w) % f
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
            x = F.pixel_unshuffle(x, f)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.upsamples + 1):
            up = F.interpolate(feat, scale_factor=2, mode="nearest")
            feat = F.leaky_relu(getattr(self, f"conv_up{i}")(up), LRELU)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), LRELU))
        return out[..., : h * self.scale, : w * self.scale]


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact net (realesr-general-x4v3, realesr-animevideov3): a plain
    stack of 3x3 convs with PReLUs at the input size, a last conv to out_ch * scale**2
    channels, pixel-shuffle, plus the nearest-upsampled input as a residual."""

    def __init__(
        self, in_ch: int = 3, out_ch: int = 3, feat: int = 64, convs: int = 16, scale: int = 4
    ):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, feat, 3, 1, 1), nn.PReLU(feat)]
        for _ in range(convs):
            layers += [nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)]
        layers.append(nn.Conv2d(feat, out_ch * scale**2, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
