"""A1111's sigma schedules (k-diffusion's get_sigmas_* and A1111's sd_schedulers.py), for the
schedule types a diffusers scheduler has no flag for.

A scheduler whose ``set_timesteps`` takes custom ``sigmas`` (diffusers' Euler) samples them
through `use_sigma_schedule`, which turns every ``set_timesteps(n)`` the pipeline makes into
``set_timesteps(sigmas=<A1111's n+1 sigmas>)``: img2img's start part-way then slices the same
list A1111 slices.

Each function takes the step count and the model's sigma range (A1111's
``model_wrap.sigmas[0]`` and ``[-1]``: the checkpoint's smallest and largest sigma) and
returns the ``n + 1`` sigmas A1111 samples, highest first.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable

import torch

SigmaFn = Callable[[int, float, float], list[float]]


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """k-diffusion's get_sigmas_karras (Karras et al. 2022), then the final 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [*((hi + ramp * (lo - hi)) ** rho).tolist(), 0.0]


def exponential(n: int, sigma_min: float, sigma_max: float) -> list[float]:
    """k-diffusion's get_sigmas_exponential: equal steps in log sigma, then the final 0."""
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    return [*logs.exp().tolist(), 0.0]


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> list[float]:
    """k-diffusion's get_sigmas_polyexponential (A1111's default rho 1)."""
    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    return [*torch.exp(ramp * (hi - lo) + lo).tolist(), 0.0]


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> list[float]:
    """A1111's kl_optimal: equal steps in arctan(sigma); it ends at sigma_min, not 0."""
    lo, hi = math.atan(sigma_min), math.atan(sigma_max)
    i = torch.arange(n + 1, dtype=torch.float64) / n
    return torch.tan(i * lo + (1.0 - i) * hi).tolist()


# A1111's schedule-type labels for the functions above.
BY_LABEL: dict[str, SigmaFn] = {
    "Karras": karras,
    "Exponential": exponential,
    "Polyexponential": polyexponential,
    "KL Optimal": kl_optimal,
}


def model_sigma_range(scheduler) -> tuple[float, float]:
    """The checkpoint's smallest and largest sigma, from the scheduler's alphas_cumprod as
    k-diffusion's CompVisDenoiser computes them."""
    ac = scheduler.alphas_cumprod.double()
    sigmas = ((1 - ac) / ac) ** 0.5
    return float(sigmas.min()), float(sigmas.max())


def use_sigma_schedule(scheduler, label: str) -> None:
    """Make `scheduler` sample A1111's `label` sigmas for whatever step count it is given.

    Only for a scheduler whose set_timesteps takes ``sigmas`` (samplers.py checks)."""
    fn = BY_LABEL[label]
    original = scheduler.set_timesteps
    sigma_min, sigma_max = model_sigma_range(scheduler)

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
        if num_inference_steps is None or kwargs.get("sigmas") is not None:
            return original(num_inference_steps, device=device, **kwargs)
        sigmas = fn(int(num_inference_steps), sigma_min, sigma_max)
        return original(device=device, sigmas=sigmas)

    scheduler.set_timesteps = types.MethodType(set_timesteps, scheduler)
