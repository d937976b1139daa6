"""Zero terminal SNR (ZTSNR) noise schedules as A1111 and Forge run them.

A v-prediction checkpoint trained with zero terminal SNR (NoobAI-XL v-pred and the like)
wants the betas rescaled so that the last timestep is pure noise (Lin et al. 2023,
diffusers' ``rescale_betas_zero_snr``). Pure noise means alphas_cumprod[-1] = 0, an infinite
sigma, so every implementation puts a small number there instead: diffusers 2**-24
(sigma_max 4096), A1111 (``rescale_zero_terminal_snr_abar``) and Forge/ComfyUI
(``rescale_zero_terminal_snr_sigmas``) 4.8973451890853435e-08 (sigma_max 4518.8). This
module gives a scheduler config A1111's alphas_cumprod as ``trained_betas``, which every
diffusers scheduler class takes, including those without ``rescale_betas_zero_snr`` (Heun,
LMS, DPM2, DPM++ SDE), so all samplers start from A1111's sigma_max.
"""

from __future__ import annotations

from typing import Any

import torch

# A1111's and Forge's stand-in for alphas_cumprod[-1] = 0.
A1111_LAST_ALPHA_BAR = 4.8973451890853435e-08


def _base_alphas_cumprod(config: dict[str, Any]) -> torch.Tensor:
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    schedule = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif schedule == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(f"zero terminal SNR: beta_schedule {schedule!r} is not supported")
    return torch.cumprod(1.0 - betas, 0)


def a1111_ztsnr_alphas_cumprod(config: dict[str, Any]) -> torch.Tensor:
    """A1111's rescale_zero_terminal_snr_abar of the config's alphas_cumprod (float64)."""
    sqrt_ac = _base_alphas_cumprod(config).sqrt()
    first, last = sqrt_ac[0].clone(), sqrt_ac[-1].clone()
    sqrt_ac = (sqrt_ac - last) * (first / (first - last))
    ac = sqrt_ac**2
    ac[-1] = A1111_LAST_ALPHA_BAR
    return ac


def with_a1111_ztsnr(config: dict[str, Any]) -> dict[str, Any]:
    """The config as a scheduler samples it: a ``rescale_betas_zero_snr`` config gets A1111's
    rescaled schedule as trained_betas (and the flag off, so diffusers does not rescale
    again); any other config is returned as it is."""
    if not config.get("rescale_betas_zero_snr"):
        return config
    ac = a1111_ztsnr_alphas_cumprod(config)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    betas = 1.0 - ac / previous
    return {**config, "trained_betas": betas.tolist(), "rescale_betas_zero_snr": False}
