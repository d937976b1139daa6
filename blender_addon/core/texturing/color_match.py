"""Matching a new view's colours to the texture so far, before it is blended in.

Each generation has its own exposure and white balance: a later view that inpaints around
what earlier views left comes back slightly brighter, darker or tinted, and blending it in
as it is leaves a visible patch. Where the new view and the texture so far see the same
surface, their colours should agree, so the view's colours are shifted and scaled per
channel (mean and standard deviation, Reinhard et al.'s colour transfer) in CIELAB until
they agree there, and that one transform is applied to everything the view contributes.
The "histogram" method matches each channel's quantiles instead (a monotone curve), which
also undoes non-linear changes such as a different contrast curve, at the price of
needing a larger overlap to be reliable.

The statistics are weighted by how much each texel counts on both sides: the texture's
coverage (well-established texels are a trustworthy reference) times the new view's blend
weight (what the view will actually contribute). Nothing changes when that overlap is
smaller than `min_overlap` texels (its effective size, see `effective_size`), and the scale
per channel is capped, so that a sliver of overlap cannot swing the colours of a view.

A later view is an inpainting: the backend pastes the generated pixels over the init image
(the texture so far, rendered into the view) only where the mask asks, and elsewhere the
view holds the texture's own colours, bit for bit. Those pixels agree by construction and
would drown the real difference, so with a mask only the regenerated pixels are compared,
and only they are changed (in proportion to the mask, read bilinearly like the colours).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .color_space import lab_to_srgb, srgb_to_lab
from .multiview import TextureAccumulator
from .projection import ViewSample, sample_bilinear

METHODS = ("mean_std", "histogram")


@dataclass(frozen=True)
class MatchSettings:
    method: str = "mean_std"  # one of METHODS
    min_overlap: float = 32.0  # effective number of overlapping texels needed to match
    max_gain: float = 2.0  # per-channel scale kept within [1 / max_gain, max_gain]
    # Spreads below this (Lab units, roughly a just-noticeable difference) count as flat:
    # the ratio of two near-zero spreads is noise and would make a wild gain.
    min_std: float = 1.0
    quantiles: int = 17  # knots of the histogram curve (evenly spaced quantiles)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"colour match method {self.method!r} is not one of {METHODS}")


@dataclass(frozen=True)
class ColorTransfer:
    """Lab' = (Lab - source_mean) * gain + target_mean, per channel."""

    source_mean: np.ndarray  # 3, the new view's mean Lab in the overlap
    target_mean: np.ndarray  # 3, the texture's mean Lab in the overlap
    gain: np.ndarray  # 3
    overlap: float  # effective number of overlap texels the statistics came from

    def apply(self, rgb255: np.ndarray) -> np.ndarray:
        """N x 3 sRGB (0..255) -> matched sRGB, clipped to 0..255."""
        lab = srgb_to_lab(rgb255)
        lab = (lab - self.source_mean) * self.gain + self.target_mean
        # Lightness outside 0..100 has no colour; clip before converting back.
        lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
        return np.clip(lab_to_srgb(lab), 0.0, 255.0)


@dataclass(frozen=True)
class CurveTransfer:
    """Per Lab channel, a monotone piecewise-linear curve through matching quantiles of the
    new view and the texture (histogram matching). Past its ends the curve continues with
    the mean/std method's gain: the overlap says nothing about colours it does not hold,
    and the steepness of its last few texels is the least reliable guess."""

    knots_in: np.ndarray  # 3 x K, increasing: the new view's quantiles in the overlap
    knots_out: np.ndarray  # 3 x K: where they go
    gain: np.ndarray  # 3, the slope past the ends
    overlap: float

    def apply(self, rgb255: np.ndarray) -> np.ndarray:
        lab = srgb_to_lab(rgb255)
        for c in range(3):
            x, y, v = self.knots_in[c], self.knots_out[c], lab[..., c]
            out = np.interp(v, x, y)
            out = np.where(v < x[0], y[0] + (v - x[0]) * self.gain[c], out)
            lab[..., c] = np.where(v > x[-1], y[-1] + (v - x[-1]) * self.gain[c], out)
        lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
        return np.clip(lab_to_srgb(lab), 0.0, 255.0)


def _weighted_quantiles(v: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    vs, ws = v[order], w[order]
    cw = np.cumsum(ws)
    cdf = (cw - 0.5 * ws) / cw[-1]
    return np.interp(p, cdf, vs)


def _fit_curve(ref: np.ndarray, new: np.ndarray, w: np.ndarray, s: MatchSettings):
    """Knots (x, y) of one channel's curve. Its slope stays within the gain cap, as the
    mean/std method's scale does: matching a histogram exactly would stretch a narrow
    band of the view's values without limit, and noise in a small overlap with it."""
    # The extremes are single texels (noise, highlights): the curve spans 2 % .. 98 %.
    p = np.linspace(0.02, 0.98, max(3, s.quantiles))
    x = _weighted_quantiles(new, w, p)
    y = _weighted_quantiles(ref, w, p)
    # Equal quantiles (a flat stretch of the view) would make vertical segments.
    x = x + np.arange(len(x)) * 1e-6
    dx = np.diff(x)
    slope = np.clip(np.diff(y) / dx, 1.0 / s.max_gain, s.max_gain)
    # Rebuild from the median, so capping steep segments does not shift the middle tones.
    y_out = np.concatenate([[0.0], np.cumsum(slope * dx)])
    mid = len(x) // 2
    y_out += y[mid] - y_out[mid]
    return x, y_out


def _weighted_mean_std(lab: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = w.sum()
    mean = (lab * w[:, None]).sum(axis=0) / total
    var = (((lab - mean) ** 2) * w[:, None]).sum(axis=0) / total
    return mean, np.sqrt(var)


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size, (sum w)^2 / sum w^2: the number of equally weighted
    texels the weighted overlap is worth. Unlike the sum of weights it does not shrink
    when every weight is small (an oblique view), only when few texels dominate."""
    w = np.asarray(weights, np.float64)
    sq = float((w * w).sum())
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def fit_transfer(
    reference: np.ndarray,
    colors: np.ndarray,
    weights: np.ndarray,
    settings: MatchSettings | None = None,
) -> ColorTransfer | CurveTransfer | None:
    """The transform taking `colors` to `reference` (both N x 3 sRGB 0..255, the same
    surface points), weighted per point; None when the overlap is too small to trust."""
    s = settings or MatchSettings()
    w = np.clip(np.asarray(weights, np.float64).reshape(-1), 0.0, None)
    overlap = effective_size(w)
    if overlap < max(s.min_overlap, 1.0):
        return None
    keep = w > 0
    w = w[keep]
    ref_lab = srgb_to_lab(np.asarray(reference)[keep, :3])
    new_lab = srgb_to_lab(np.asarray(colors)[keep, :3])
    ref_mean, ref_std = _weighted_mean_std(ref_lab, w)
    new_mean, new_std = _weighted_mean_std(new_lab, w)
    gain = np.maximum(ref_std, s.min_std) / np.maximum(new_std, s.min_std)
    gain = np.clip(gain, 1.0 / s.max_gain, s.max_gain)
    if s.method == "histogram":
        knots = [_fit_curve(ref_lab[:, c], new_lab[:, c], w, s) for c in range(3)]
        return CurveTransfer(
            np.stack([k[0] for k in knots]), np.stack([k[1] for k in knots]), gain, overlap
        )
    return ColorTransfer(new_mean, ref_mean, gain, overlap)


def _regenerated(sample: ViewSample, mask: np.ndarray | None) -> np.ndarray:
    """Per texel, 0..1: how much of its colour the generation made (1 without a mask)."""
    if mask is None:
        return np.ones(sample.weights.shape[0])
    out = np.zeros(sample.weights.shape[0])
    seen = sample.weights > 0
    if seen.any():
        m = np.asarray(mask, np.float32) / 255.0
        out[seen] = sample_bilinear(m, sample.pixels[seen])[:, 0]
    return out


def match_view(
    accs: list[TextureAccumulator],
    samples: list[ViewSample],
    mask: np.ndarray | None = None,
    settings: MatchSettings | None = None,
) -> tuple[list[ViewSample], ColorTransfer | CurveTransfer | None]:
    """One view's samples (one per target texture, in the order of `accs`) with colours
    matched to the textures so far, and the transform used (None: left unchanged).

    `mask` (H x W, 255 = generated) is the view's inpaint mask; None: the whole view was
    generated. The overlap of all targets is pooled: the view is one image with one
    exposure, and a target that shares little surface with the texture so far is matched
    by the others.
    """
    if not samples:
        return samples, None
    regen = [_regenerated(smp, mask) for smp in samples]
    refs, news, ws = [], [], []
    for acc, smp, r in zip(accs, samples, regen, strict=True):
        w = acc.coverage() * smp.weights.astype(np.float64) * r
        sel = w > 0
        refs.append(acc.colors()[sel, :3])
        news.append(smp.colors[sel, :3])
        ws.append(w[sel])
    transfer = fit_transfer(
        np.concatenate(refs), np.concatenate(news), np.concatenate(ws), settings
    )
    if transfer is None:
        return samples, None
    out = []
    for smp, r in zip(samples, regen, strict=True):
        colors = smp.colors.copy()
        sel = (smp.weights > 0) & (r > 0)
        old = smp.colors[sel, :3].astype(np.float64)
        mix = r[sel, None]
        colors[sel, :3] = (old * (1 - mix) + transfer.apply(old) * mix).astype(np.float32)
        out.append(replace(smp, colors=colors))
    return out, transfer
