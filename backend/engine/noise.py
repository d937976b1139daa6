"""Seeds and initial noise, with A1111's conventions.

- seed -1 means "pick one"; the chosen seed is reported so the image can be remade.
- Image i of a batch uses seed + i (and subseed + i), as A1111 does.
- Noise comes from a CPU generator, so a seed gives the same image on CUDA, MPS and CPU
  (A1111's "CPU" RNG source; diffusers does the same when handed a CPU generator).
- Variation seeds: the noise of the subseed is blended in by A1111's slerp, including its
  quirks (norms over dim 1 of a C x H x W tensor, the near-parallel linear fallback), so a
  variation strength copied from A1111 infotext moves the noise the same way.
"""

from __future__ import annotations

import random

import torch

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    if seed is None or int(seed) < 0:
        return random.randint(0, MAX_SEED)
    return int(seed) & MAX_SEED


def batch_seeds(seed: int, batch: int) -> list[int]:
    return [(seed + i) & MAX_SEED for i in range(batch)]


def generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation of one image's noise (C x H x W)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        # A1111 returns this exact expression for nearly parallel inputs; keep it.
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (
        torch.sin(val * omega) / so
    ).unsqueeze(1) * high


def variation_noise(noise: torch.Tensor, subseeds: list[int], strength: float) -> torch.Tensor:
    """Blend each image's noise (B x C x H x W) toward the noise of its subseed."""
    if strength <= 0.0:
        return noise
    out = []
    for i, sub in enumerate(subseeds):
        subnoise = randn(sub, tuple(noise.shape[1:])).to(noise.device, noise.dtype)
        out.append(slerp(strength, noise[i], subnoise))
    return torch.stack(out)


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """B x C x H x W noise, one seeded draw per image (what diffusers draws per generator)."""
    return torch.stack([randn(s, shape) for s in seeds])
