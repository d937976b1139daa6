"""A1111 sampler names -> diffusers schedulers (diffusers' documented A1111 mapping table)."""

from __future__ import annotations

import pytest
import torch

from dreamwire.backend.samplers import (
    SAMPLERS,
    SCHEDULE_TYPES,
    available_samplers,
    infotext_sampler,
    make_scheduler,
    sampler_info,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode

# The SD1.5 checkpoint's scheduler config, as diffusers' single-file loader writes it.
SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

# name -> (diffusers class, flags that must hold). From the diffusers schedulers overview
# table "A1111/k-diffusion -> Diffusers" plus the A1111 specifics documented in samplers.py;
# a name without a schedule type runs A1111 1.9+'s default for the sampler ("Automatic").
EXPECTED = {
    "Euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {"use_karras_sigmas": False}),
    "LMS": ("LMSDiscreteScheduler", {"use_karras_sigmas": False}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2S a": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2S a Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DPM++ 2M SDE": (
        "DPMSolverMultistepScheduler",
        {
            "algorithm_type": "sde-dpmsolver++",
            "solver_type": "midpoint",
            "use_karras_sigmas": False,
            "use_exponential_sigmas": True,
        },
    ),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "DPM++ 2M SDE Exponential": (
        "DPMSolverMultistepScheduler",
        {
            "algorithm_type": "sde-dpmsolver++",
            "use_exponential_sigmas": True,
            "use_karras_sigmas": False,
        },
    ),
    "DPM++ 2M SDE Heun": (
        "DPMSolverMultistepScheduler",
        {
            "algorithm_type": "sde-dpmsolver++",
            "solver_type": "heun",
            "use_exponential_sigmas": True,
        },
    ),
    "DPM++ 2M SDE Heun Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun", "use_karras_sigmas": True},
    ),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "DDIM": (
        "DDIMScheduler",
        {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False},
    ),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True, "steps_offset": 1}),
    "UniPC": ("UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3}),
    "LCM": ("LCMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
}


def test_every_listed_sampler_has_an_expectation():
    assert set(SAMPLERS) == set(EXPECTED)
    # The minimum set.
    for name in (
        "Euler",
        "Euler a",
        "DDIM",
        "DPM++ 2M",
        "DPM++ 2M Karras",
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Karras",
        "DPM++ SDE Karras",
        "UniPC",
        "Heun",
        "LMS",
        "DPM2",
        "LCM",
    ):
        assert name in SAMPLERS


@pytest.mark.parametrize("name", list(EXPECTED))
def test_mapping_class_and_flags(name):
    cls_name, flags = EXPECTED[name]
    sched = make_scheduler(name, SD15)
    assert type(sched).__name__ == cls_name
    for key, value in flags.items():
        assert sched.config[key] == value, (name, key)
    # The model's noise schedule is inherited from the checkpoint.
    assert sched.config.beta_schedule == "scaled_linear"
    assert sched.config.beta_start == pytest.approx(0.00085)
    # And it runs: a couple of steps on a random latent.
    sched.set_timesteps(4)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x = x * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(1)
    for t in sched.timesteps[:2]:
        xin = sched.scale_model_input(x, t)
        eps = 0.1 * xin
        kwargs = {"generator": gen} if "generator" in _step_params(sched) else {}
        x = sched.step(eps, t, x, **kwargs).prev_sample
    assert torch.isfinite(x).all()


def _step_params(sched) -> set[str]:
    import inspect

    return set(inspect.signature(sched.step).parameters)


def test_kdiffusion_samplers_start_at_the_models_sigma_max():
    """A1111 spaces k-diffusion sigmas uniformly in t from 999: not the checkpoint's 'leading'."""
    for name in ("Euler", "DPM++ 2M", "Heun", "LMS"):
        sched = make_scheduler(name, SD15)
        sched.set_timesteps(10)
        assert float(sched.timesteps[0]) == pytest.approx(999.0), name


def test_ddim_uses_a1111_discretisation():
    # A1111: range(0, 1000, 1000 // steps) + 1, highest first.
    sched = make_scheduler("DDIM", SD15)
    sched.set_timesteps(10)
    assert [int(t) for t in sched.timesteps] == list(range(901, 0, -100))


def test_karras_sigmas_follow_the_karras_formula():
    sched = make_scheduler("DPM++ 2M Karras", SD15)
    sched.set_timesteps(8)
    sigmas = sched.sigmas[:-1].double()
    base = make_scheduler("Euler", SD15)
    base.set_timesteps(1000)
    smin, smax = float(base.sigmas[-2]), float(base.sigmas[0])
    rho = 7.0
    ramp = torch.linspace(0, 1, 8, dtype=torch.float64)
    expect = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    assert torch.allclose(sigmas, expect, rtol=1e-3)


def test_checkpoint_flags_are_reset():
    """A base config that already asks for Karras must not leak into plain 'DPM++ 2M'."""
    cfg = {
        **SD15,
        "_class_name": "DPMSolverMultistepScheduler",
        "use_karras_sigmas": True,
        "algorithm_type": "sde-dpmsolver++",
        "solver_order": 3,
    }
    sched = make_scheduler("DPM++ 2M Uniform", cfg)
    assert sched.config.use_karras_sigmas is False
    assert sched.config.algorithm_type == "dpmsolver++"
    assert sched.config.solver_order == 2


def test_prediction_type_and_scheduler_instance_base():
    from diffusers import EulerDiscreteScheduler

    base = EulerDiscreteScheduler.from_config({**SD15, "prediction_type": "v_prediction"})
    sched = make_scheduler("DPM++ 2M Karras", base)
    assert sched.config.prediction_type == "v_prediction"
    assert sched is not base


@pytest.mark.parametrize(
    "legacy,split",
    [
        ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Karras", ("DPM++ 2M SDE", "Karras")),
        ("DPM++ SDE Karras", ("DPM++ SDE", "Karras")),
        ("LMS Karras", ("LMS", "Karras")),
        ("DPM2 a Karras", ("DPM2 a", "Karras")),
        ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
    ],
)
def test_both_a1111_spellings_agree(legacy, split):
    a = sampler_info(legacy)
    b = sampler_info(*split)
    assert a == b
    assert a.name == legacy
    assert (a.sampler, a.schedule_type) == split
    assert infotext_sampler(legacy) == {"Sampler": split[0], "Schedule type": split[1]}


def test_schedule_type_fields():
    assert infotext_sampler("Euler a") == {"Sampler": "Euler a", "Schedule type": "Automatic"}
    assert sampler_info("Euler", "Automatic").name == "Euler"
    assert sampler_info("DPM++ 2M", "SGM Uniform").options["timestep_spacing"] == "trailing"
    assert sampler_info("Euler", "Simple").options["timestep_spacing"] == "trailing"
    assert sampler_info("Euler", "Beta").options["use_beta_sigmas"] is True
    assert sampler_info("DDIM", "Uniform").options["timestep_spacing"] == "leading"
    # k-diffusion aliases and case/space differences
    assert sampler_info("k_dpmpp_2m").name == "DPM++ 2M"
    assert sampler_info("dpm++  2m  KARRAS").name == "DPM++ 2M Karras"
    assert "Karras" in SCHEDULE_TYPES
    # Every name on the hosts' list (the X/Y/Z plot's Schedule type axis) runs here, given
    # in either spelling, and the sampler name it builds for each resolves to it.
    from dreamwire.shared import schedule_types

    for sched in schedule_types.SCHEDULE_TYPES:
        assert sampler_info("Euler", sched.upper()).schedule_type == sched
        assert sampler_info(schedule_types.with_schedule("Euler", sched)).schedule_type == sched
    for sched in ("Karras", "SGM Uniform", "Exponential"):
        built = schedule_types.with_schedule("DPM++ 2M SDE Karras", sched)
        assert sampler_info(built).schedule_type == sched
    assert sampler_info(schedule_types.with_schedule("DPM++ 2M SDE", "Automatic")).name == (
        "DPM++ 2M SDE"
    )


@pytest.mark.parametrize(
    "name,schedule,needle",
    [
        ("Eular", None, "unknown sampler 'Eular'"),
        ("", None, "no sampler given"),
        ("DPM adaptive", None, "no diffusers equivalent"),
        ("DPM++ 2M", "Align Your Steps", "no diffusers equivalent"),
        ("DPM++ 2M", "Sideways", "unknown schedule type"),
        ("DDIM", "Karras", "takes no schedule type"),
        ("Euler a", "Karras", "not available in diffusers"),
        ("DPM++ 2M Karras", "Exponential", "conflicts"),
    ],
)
def test_unknown_is_an_error_listing_known_names(name, schedule, needle):
    with pytest.raises(DreamwireError) as err:
        make_scheduler(name, SD15, schedule)
    assert err.value.code == ErrorCode.UNKNOWN_SAMPLER
    assert needle in err.value.message
    for known in ("Euler a", "DPM++ 2M Karras", "UniPC"):
        assert known in err.value.message


def test_all_samplers_available_here():
    # torchsde and scipy are installed in the backend environment.
    assert available_samplers() == SAMPLERS
