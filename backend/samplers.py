"""A1111 sampler names mapped onto diffusers schedulers.

The mapping follows the "A1111/k-diffusion to Diffusers" table in the diffusers schedulers
overview (Karras schedule -> ``use_karras_sigmas=True``, "DPM++ 2M SDE" ->
``algorithm_type="sde-dpmsolver++"``, sgm_uniform/simple -> ``timestep_spacing="trailing"``)
with a few A1111-faithful choices the table does not spell out:

* k-diffusion samplers (Euler, Heun, LMS, DPM2, DPM++) get ``timestep_spacing="linspace"``:
  A1111 takes their sigmas at t uniformly spaced from 999 to 0, so sigma_max is the model's
  own; the "leading" spacing of SD checkpoint configs would start at t=951 instead.
* DDIM and PLMS get A1111's discretisation, range(0, 1000, 1000 // steps) + 1, which is
  diffusers' "leading" spacing with ``steps_offset=1``.
* "DPM++ SDE" uses DPMSolverSDEScheduler, the port of k-diffusion's ``sample_dpmpp_sde``
  that A1111 runs (the table's DPMSolverSinglestepScheduler is a deterministic stand-in).
  It needs the ``torchsde`` package.
* UniPC takes A1111's default settings (variant bh1, order 3).
* Schedule type "Automatic" (or none) is A1111 1.9+'s: the sampler's own default from A1111's
  sampler table (its ``scheduler`` option): Karras for DPM++ 2M, DPM++ SDE, DPM++ 2S a, DPM2
  and DPM2 a, exponential for the DPM++ 2M SDE family, the model's uniform sigmas for the
  rest. The infotext names the schedule that ran, as A1111 writes it ("Schedule type: Karras").
* A schedule type the diffusers class has no flag for is given as A1111's own sigmas
  (sigma_schedules.py) where its set_timesteps takes custom sigmas (Euler: Polyexponential,
  KL Optimal); elsewhere it is refused by name.

Every flag a sampler is defined by is set explicitly, because the base config comes from the
checkpoint and may carry e.g. ``use_karras_sigmas=True`` that "DPM++ 2M Uniform" must undo.

A1111 1.9+ writes "Sampler: DPM++ 2M, Schedule type: Karras"; older versions wrote
"Sampler: DPM++ 2M Karras". Both spellings resolve to the same scheduler here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dreamwire.backend import noise_schedule, sigma_schedules
from dreamwire.shared import schedule_types
from dreamwire.shared.errors import DreamwireError, ErrorCode

# Schedule flags that must be reset whenever a scheduler class supports them.
_SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass(frozen=True)
class _Base:
    """One A1111 sampler without its schedule type."""

    name: str
    cls: str
    options: dict[str, Any] = field(default_factory=dict)
    kdiffusion: bool = True  # sigma-schedule sampler: takes A1111's schedule types
    # A1111 1.9+'s `scheduler` option in its sampler table: what "Automatic" (or no schedule
    # type) samples; "" = the model's own sigmas, uniform in t.
    default_schedule: str = ""
    approximate: bool = False
    note: str = ""
    aliases: tuple[str, ...] = ()


_LINSPACE = {"timestep_spacing": "linspace"}
_A1111_DISCRETE = {"timestep_spacing": "leading", "steps_offset": 1}

_BASES: tuple[_Base, ...] = (
    _Base("Euler", "EulerDiscreteScheduler", dict(_LINSPACE), aliases=("k_euler",)),
    _Base(
        "Euler a",
        "EulerAncestralDiscreteScheduler",
        dict(_LINSPACE),
        aliases=("k_euler_a", "k_euler_ancestral"),
        note="diffusers' ancestral Euler has no Karras/exponential sigma option",
    ),
    _Base("Heun", "HeunDiscreteScheduler", dict(_LINSPACE), aliases=("k_heun",)),
    _Base("LMS", "LMSDiscreteScheduler", dict(_LINSPACE), aliases=("k_lms",)),
    _Base(
        "DPM2",
        "KDPM2DiscreteScheduler",
        dict(_LINSPACE),
        aliases=("k_dpm_2",),
        note="A1111 also discards the next-to-last sigma; diffusers does not",
        default_schedule="Karras",
    ),
    _Base(
        "DPM2 a",
        "KDPM2AncestralDiscreteScheduler",
        dict(_LINSPACE),
        aliases=("k_dpm_2_a",),
        note="A1111 also discards the next-to-last sigma; diffusers does not",
        default_schedule="Karras",
    ),
    _Base(
        "DPM++ 2S a",
        "DPMSolverSinglestepScheduler",
        {
            "algorithm_type": "dpmsolver++",
            "solver_order": 2,
            "solver_type": "midpoint",
            "lower_order_final": True,
        },
        approximate=True,
        aliases=("k_dpmpp_2s_a",),
        note="diffusers has no ancestral DPM++ 2S; the documented near equivalent is the "
        "deterministic second-order singlestep DPM-Solver++",
        default_schedule="Karras",
    ),
    _Base(
        "DPM++ 2M",
        "DPMSolverMultistepScheduler",
        {
            **_LINSPACE,
            "algorithm_type": "dpmsolver++",
            "solver_order": 2,
            "solver_type": "midpoint",
        },
        aliases=("k_dpmpp_2m",),
        default_schedule="Karras",
    ),
    _Base(
        "DPM++ 2M SDE",
        "DPMSolverMultistepScheduler",
        {
            **_LINSPACE,
            "algorithm_type": "sde-dpmsolver++",
            "solver_order": 2,
            "solver_type": "midpoint",
        },
        aliases=("k_dpmpp_2m_sde",),
        default_schedule="Exponential",
    ),
    _Base(
        "DPM++ 2M SDE Heun",
        "DPMSolverMultistepScheduler",
        {
            **_LINSPACE,
            "algorithm_type": "sde-dpmsolver++",
            "solver_order": 2,
            "solver_type": "heun",
        },
        aliases=("k_dpmpp_2m_sde_heun",),
        default_schedule="Exponential",
    ),
    _Base(
        "DPM++ SDE",
        "DPMSolverSDEScheduler",
        dict(_LINSPACE),
        aliases=("k_dpmpp_sde",),
        note="needs the torchsde package",
        default_schedule="Karras",
    ),
    _Base(
        "DDIM",
        "DDIMScheduler",
        {**_A1111_DISCRETE, "set_alpha_to_one": False, "clip_sample": False},
        kdiffusion=False,
        aliases=("ddim",),
    ),
    _Base(
        "PLMS",
        "PNDMScheduler",
        {**_A1111_DISCRETE, "skip_prk_steps": True, "set_alpha_to_one": False},
        kdiffusion=False,
        aliases=("plms",),
    ),
    _Base(
        "UniPC",
        "UniPCMultistepScheduler",
        {
            **_LINSPACE,
            "solver_type": "bh1",
            "solver_order": 3,
            "lower_order_final": True,
            "predict_x0": True,
        },
        aliases=("unipc",),
        note="A1111's defaults: variant bh1, order 3, time-uniform steps",
    ),
    _Base(
        "LCM",
        "LCMScheduler",
        {},
        kdiffusion=False,
        aliases=("k_lcm",),
        note="for LCM-distilled models or an LCM LoRA (use CFG 1-2 and 4-8 steps)",
    ),
    _Base(
        "DDPM",
        "DDPMScheduler",
        {},
        kdiffusion=False,
        note="not an A1111 built-in (Forge and ComfyUI have it); ancestral DDPM sampling",
    ),
)

# The diffusers flags that express each of A1111's "Schedule type" values. The names and
# their order are shared.schedule_types' (the hosts' list), keyed from there: a name added
# there without its flags here fails at import. Those listed in sigma_schedules.BY_LABEL can
# also be given as custom sigmas to a scheduler that takes them (diffusers' Euler), which is
# the only way for the ones without a flag (None).
_SCHEDULE_FLAGS: dict[str, dict[str, Any] | None] = {
    "Automatic": {},
    "Uniform": {"timestep_spacing": "linspace"},
    "Normal": {"timestep_spacing": "linspace"},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
    "Simple": {"timestep_spacing": "trailing"},
    "Polyexponential": None,
    "KL Optimal": None,
}
SCHEDULE_TYPES: list[str] = list(schedule_types.SCHEDULE_TYPES)
_SCHEDULES = {name: _SCHEDULE_FLAGS[name] for name in SCHEDULE_TYPES}

# A1111 samplers and schedule types that exist there but have no diffusers counterpart:
# named in the error so the artist learns why, rather than being told the name is a typo.
_NOT_AVAILABLE = {
    "DPM fast": "k-diffusion's DPM fast",
    "DPM adaptive": "k-diffusion's adaptive-step DPM solver",
    "DPM++ 3M SDE": "third-order SDE DPM-Solver++",
    "Restart": "the Restart sampler",
    "DDIM CFG++": "DDIM with CFG++",
    "Heun PP2": "Heun PP2",
    "DPM++ 2M SDE GPU": "GPU-seeded DPM++ 2M SDE",
    "DPM++ 2M SDE Heun GPU": "GPU-seeded DPM++ 2M SDE Heun",
}
_SCHEDULES_NOT_AVAILABLE = ("Align Your Steps", "DDIM")


@dataclass(frozen=True)
class SamplerInfo:
    """What one A1111 sampler name resolves to."""

    name: str  # A1111's pre-1.9 display name, e.g. "DPM++ 2M Karras"
    sampler: str  # A1111 1.9+ sampler field, e.g. "DPM++ 2M"
    # A1111 1.9+ "Schedule type" that runs: "Automatic" resolved to the sampler's own default
    # ("DPM++ 2M" -> "Karras"), as A1111 writes it; "Automatic" for a sampler without one.
    schedule_type: str
    scheduler_class: str  # diffusers class name
    options: dict[str, Any]  # keyword overrides applied on top of the checkpoint's config
    approximate: bool = False  # diffusers has only a near equivalent
    note: str = ""
    # A schedule type given to the scheduler as A1111's own sigmas (sigma_schedules.py)
    # because the diffusers class has no flag for it; "" when its flags express it.
    custom_sigmas: str = ""

    def infotext_fields(self) -> dict[str, str]:
        """The fields A1111 1.9+ writes (it writes "Schedule type: Automatic" too)."""
        return {"Sampler": self.sampler, "Schedule type": self.schedule_type}


def _display(base: str, schedule: str) -> str:
    return base if schedule == "Automatic" else f"{base} {schedule}"


# The names an artist sees in A1111's sampler menu before 1.9 (plus the schedule-type
# combinations that diffusers supports for the common k-diffusion samplers).
SAMPLERS: list[str] = [
    "Euler",
    "Euler a",
    "Heun",
    "LMS",
    "LMS Karras",
    "DPM2",
    "DPM2 Karras",
    "DPM2 a",
    "DPM2 a Karras",
    "DPM++ 2S a",
    "DPM++ 2S a Karras",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Karras",
    "DPM++ 2M SDE Exponential",
    "DPM++ 2M SDE Heun",
    "DPM++ 2M SDE Heun Karras",
    "DPM++ SDE",
    "DPM++ SDE Karras",
    "DDIM",
    "PLMS",
    "UniPC",
    "LCM",
    "DDPM",
]

_BY_KEY: dict[str, _Base] = {}
for _b in _BASES:
    _BY_KEY[_b.name.lower()] = _b
    for _a in _b.aliases:
        _BY_KEY[_a.lower()] = _b


def _scheduler_class(cls_name: str) -> type:
    import diffusers

    cls = getattr(diffusers, cls_name)
    # diffusers exports placeholder classes when an optional dependency is missing.
    if cls.__module__.startswith("diffusers.utils.dummy"):
        need = "torchsde" if "torchsde" in cls.__module__ else "scipy"
        raise DreamwireError(
            ErrorCode.UNKNOWN_SAMPLER,
            f"{cls_name} needs the {need} package; install it into the backend's "
            f"environment (pip install {need})",
        )
    return cls


def _class_params(cls_name: str) -> set[str]:
    import inspect

    return set(inspect.signature(_scheduler_class(cls_name).__init__).parameters)


def _unknown(name: str, detail: str = "") -> DreamwireError:
    msg = detail or f"unknown sampler {name!r}"
    return DreamwireError(
        ErrorCode.UNKNOWN_SAMPLER,
        f"{msg}; known samplers: {', '.join(SAMPLERS)}"
        f" (schedule types: {', '.join(SCHEDULE_TYPES)})",
    )


def _split(name: str, schedule_type: str | None) -> tuple[_Base, str]:
    """Find the base sampler and schedule type for either spelling of a name."""
    if not isinstance(name, str) or not name.strip():
        raise _unknown(str(name), "no sampler given")
    key = " ".join(name.split()).lower()
    sched = "Automatic"
    if schedule_type is not None and schedule_type.strip():
        if schedule_type.strip() in _SCHEDULES_NOT_AVAILABLE:
            raise _unknown(
                name, f"A1111's schedule type {schedule_type!r} has no diffusers equivalent"
            )
        try:
            sched = schedule_types.schedule_type(schedule_type)
        except DreamwireError:
            raise _unknown(name, f"unknown schedule type {schedule_type!r}") from None
    base = _BY_KEY.get(key)
    if base is None:
        # Legacy form: the schedule type appended to the sampler ("DPM++ 2M Karras"); the
        # split is the hosts' (shared.schedule_types), the base names and aliases are ours.
        prefix, legacy = schedule_types.split_sampler(name)
        base = _BY_KEY.get(prefix.lower())
        if base is not None:
            if sched not in ("Automatic", legacy):
                raise _unknown(
                    name, f"sampler {name!r} conflicts with schedule type {schedule_type!r}"
                )
            sched = legacy
    if base is None:
        for na, what in _NOT_AVAILABLE.items():
            if key == na.lower():
                raise _unknown(name, f"A1111's {na!r} ({what}) has no diffusers equivalent")
        raise _unknown(name)
    return base, sched


def sampler_info(name: str, schedule_type: str | None = None) -> SamplerInfo:
    """Resolve a sampler name (either A1111 spelling) to its diffusers scheduler and options.

    "Automatic" (or no schedule type) is A1111 1.9+'s: the sampler's own default schedule
    from A1111's sampler table, e.g. Karras for DPM++ 2M, exponential for DPM++ 2M SDE.

    Raises DreamwireError(UNKNOWN_SAMPLER), listing the known names, for anything that cannot
    be reproduced faithfully: there is no silent fallback to another sampler.
    """
    base, asked = _split(name, schedule_type)
    sched = base.default_schedule if asked == "Automatic" and base.default_schedule else asked
    options = dict(base.options)
    extra = _SCHEDULES[sched]
    custom = ""
    if not base.kdiffusion and sched in ("Uniform", "Normal"):
        extra = {}  # DDIM/PLMS/LCM/DDPM steps are uniform in t already
    params = _class_params(base.cls)
    if extra is None or extra:
        if not base.kdiffusion:
            raise _unknown(name, f"{base.name} takes no schedule type (got {sched!r})")
        missing = [k for k in extra or () if k not in params]
        if extra is None or missing:
            if sched not in sigma_schedules.BY_LABEL or not _takes_sigmas(base.cls):
                what = f"has no {missing[0]} option" if missing else "takes no custom sigmas"
                raise _unknown(
                    name,
                    f"{base.name} with schedule type {sched!r} is not available in diffusers "
                    f"({base.cls} {what})",
                )
            custom = sched
        else:
            options.update(extra)
    for flag in _SIGMA_FLAGS:
        if flag in params:
            options.setdefault(flag, False)
    options = {k: v for k, v in options.items() if k in params}
    return SamplerInfo(
        name=_display(base.name, asked),
        sampler=base.name,
        schedule_type=sched,
        scheduler_class=base.cls,
        options=options,
        approximate=base.approximate,
        note=base.note,
        custom_sigmas=custom,
    )


def _takes_sigmas(cls_name: str) -> bool:
    import inspect

    return "sigmas" in inspect.signature(_scheduler_class(cls_name).set_timesteps).parameters


def make_scheduler(name: str, base_scheduler_config: Any, schedule_type: str | None = None):
    """A fresh diffusers scheduler for `name`, built from the checkpoint's scheduler config.

    `base_scheduler_config` is the checkpoint's scheduler config (a dict or FrozenDict) or a
    scheduler instance. The betas, prediction type and training timesteps come from it; the
    sampler's own options override the rest.
    """
    info = sampler_info(name, schedule_type)
    cls = _scheduler_class(info.scheduler_class)
    config = getattr(base_scheduler_config, "config", base_scheduler_config)
    if config is None:
        config = {}
    # Only the keys this class takes: the rest describe the checkpoint's original scheduler
    # class (e.g. PNDM's skip_prk_steps) and would only make diffusers log warnings.
    params = _class_params(info.scheduler_class)
    # A zero-terminal-SNR model samples A1111's rescaled schedule (noise_schedule.py).
    config = noise_schedule.with_a1111_ztsnr(dict(config))
    config = {k: v for k, v in config.items() if k in params}
    scheduler = cls.from_config(config, **info.options)
    if info.custom_sigmas:
        sigma_schedules.use_sigma_schedule(scheduler, info.custom_sigmas)
    return scheduler


def infotext_sampler(name: str, schedule_type: str | None = None) -> dict[str, str]:
    """The Sampler / Schedule type fields to write into infotext for this sampler."""
    return sampler_info(name, schedule_type).infotext_fields()


def available_samplers() -> list[str]:
    """SAMPLERS minus those whose optional package (torchsde, scipy) is not installed."""
    out = []
    for n in SAMPLERS:
        try:
            sampler_info(n)
        except DreamwireError:
            continue
        out.append(n)
    return out


__all__ = [
    "SAMPLERS",
    "SCHEDULE_TYPES",
    "SamplerInfo",
    "available_samplers",
    "infotext_sampler",
    "make_scheduler",
    "sampler_info",
]
