"""A1111 1.9+ schedule types: "Automatic" is the sampler's own default from A1111's sampler
table, and schedule types diffusers has no flag for run as A1111's sigmas where the scheduler
takes custom sigmas. The sigma sequences are checked against k-diffusion's / A1111's
formulas, written out here, on the tiny SD1 model's scheduler config."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dreamwire import catalog
from dreamwire.backend.samplers import infotext_sampler, make_scheduler, sampler_info
from dreamwire.shared.errors import DreamwireError, ErrorCode

CONFIG = json.loads(
    (catalog.config_dir("tiny-sd1") / "scheduler/scheduler_config.json").read_text()
)

# A1111 1.9+ sd_samplers_kdiffusion.samplers_k_diffusion, its `scheduler` option per sampler
# ("Automatic": none, the model's uniform sigmas); timestep samplers have none either.
A1111_DEFAULTS = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 2S a": "Karras",
    "Euler a": "Automatic",
    "Euler": "Automatic",
    "LMS": "Automatic",
    "Heun": "Automatic",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
    "DDIM": "Automatic",
    "UniPC": "Automatic",
}


def _model_sigma_range() -> tuple[float, float]:
    # k-diffusion's CompVisDenoiser: sigmas from the model's alphas_cumprod.
    betas = torch.linspace(CONFIG["beta_start"] ** 0.5, CONFIG["beta_end"] ** 0.5, 1000) ** 2
    ac = torch.cumprod(1 - betas, 0).double()
    s = ((1 - ac) / ac) ** 0.5
    return float(s[0]), float(s[-1])


def karras(n, smin, smax, rho=7.0):
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    out = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([out, torch.zeros(1, dtype=torch.float64)])


def exponential(n, smin, smax):
    out = torch.linspace(math.log(smax), math.log(smin), n, dtype=torch.float64).exp()
    return torch.cat([out, torch.zeros(1, dtype=torch.float64)])


def polyexponential(n, smin, smax, rho=1.0):
    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    out = torch.exp(ramp * (math.log(smax) - math.log(smin)) + math.log(smin))
    return torch.cat([out, torch.zeros(1, dtype=torch.float64)])


def kl_optimal(n, smin, smax):
    i = torch.arange(n + 1, dtype=torch.float64)
    return torch.tan(i / n * math.atan(smin) + (1.0 - i / n) * math.atan(smax))


@pytest.mark.parametrize("name,expected", list(A1111_DEFAULTS.items()))
def test_automatic_is_the_samplers_own_default(name, expected):
    info = sampler_info(name)
    assert info.schedule_type == expected
    assert sampler_info(name, "Automatic") == info
    # A1111 writes the schedule that ran: "Sampler: DPM++ 2M, Schedule type: Karras".
    assert infotext_sampler(name) == {"Sampler": name, "Schedule type": expected}
    if expected != "Automatic":  # the same scheduler as naming the schedule outright
        assert info.options == sampler_info(name, expected).options


def _sigmas(name: str, steps: int, schedule: str | None = None) -> torch.Tensor:
    sched = make_scheduler(name, CONFIG, schedule)
    sched.set_timesteps(steps)
    return sched.sigmas.double()


@pytest.mark.parametrize(
    "name,schedule,formula",
    [
        ("DPM++ 2M", None, karras),
        ("DPM++ SDE", None, karras),
        ("DPM++ 2M SDE Heun", None, exponential),
        ("DPM++ 2M SDE", None, exponential),
        ("Euler", "Karras", karras),
        ("Euler", "Exponential", exponential),
        ("Euler", "Polyexponential", polyexponential),
        ("Euler", "KL Optimal", kl_optimal),
    ],
)
def test_sigma_sequences_follow_a1111s_formulas(name, schedule, formula):
    steps = 7
    smin, smax = _model_sigma_range()
    got = _sigmas(name, steps, schedule)
    expect = formula(steps, smin, smax)
    if name == "DPM++ SDE":
        got = torch.cat([got[:-1:2], got[-1:]])  # second-order: each sigma taken twice
    assert got.shape == expect.shape, (got, expect)
    assert torch.allclose(got, expect, rtol=2e-6, atol=1e-7), (got, expect)


def test_custom_sigmas_give_the_matching_timesteps():
    """Euler samples A1111's Polyexponential sigmas at the t each sigma has in the model."""
    sched = make_scheduler("Euler", CONFIG, "Polyexponential")
    sched.set_timesteps(5)
    assert float(sched.timesteps[0]) == pytest.approx(999.0, abs=1e-3)
    assert float(sched.timesteps[-1]) == pytest.approx(0.0, abs=1e-3)
    assert len(sched.timesteps) == 5
    uniform = make_scheduler("Euler", CONFIG)
    uniform.set_timesteps(5)
    assert not torch.allclose(sched.timesteps, uniform.timesteps)


def test_uniform_is_still_reachable_and_differs_from_automatic():
    auto = _sigmas("DPM++ 2M", 6)
    assert torch.equal(auto, _sigmas("DPM++ 2M Karras", 6))
    uniform = _sigmas("DPM++ 2M", 6, "Uniform")
    assert sampler_info("DPM++ 2M Uniform").schedule_type == "Uniform"
    assert auto.shape == uniform.shape and not torch.allclose(auto, uniform)


@pytest.mark.parametrize(
    "name,schedule,needle",
    [
        ("Euler a", "Polyexponential", "takes no custom sigmas"),
        ("DPM++ 2M", "KL Optimal", "takes no custom sigmas"),
        ("Euler a", "Karras", "has no use_karras_sigmas option"),
        ("Euler", "Align Your Steps", "no diffusers equivalent"),
    ],
)
def test_schedules_without_a_way_in_are_refused_by_name(name, schedule, needle):
    with pytest.raises(DreamwireError) as err:
        sampler_info(name, schedule)
    assert err.value.code == ErrorCode.UNKNOWN_SAMPLER
    assert needle in err.value.message and schedule in err.value.message
