"""What a job asks of its model's family, checked against the family spec's `Support`
before anything loads: a feature the family cannot run is one clear MODEL_UNSUPPORTED
naming the family and the reason, never a shape error deep inside diffusers.
"""

from __future__ import annotations

from dreamwire import catalog
from dreamwire.backend import prompts
from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.family_support import job_features, skip_layer_guidance_refusal
from dreamwire.shared.job import Job

from . import scheduling


def _has_schedule(text: str, steps: int) -> bool:
    return len(prompts.prompt_schedule(text, max(steps, 1))) > 1


def requested(job: Job) -> list[str]:
    """The Support features (backend/families/spec.py) this job uses: what a host sees too
    (shared.family_support.job_features), then the prompt syntax only the backend parses."""
    used = job_features(job)
    text, _ = prompts.extract_extra_networks(job.prompt)
    if prompts.is_composable(prompts.split_subprompts(text)):
        used.append("composable")
    if _has_schedule(text, job.steps) or _has_schedule(job.negative, job.steps):
        used.append("prompt_schedules")
    return used


def check_training(family: str) -> None:
    """Refuse a train_lora job on a family whose spec does not opt in (Support.train_lora),
    in the words the hosts use (its sampler is not used: no sampler check)."""
    spec = spec_for(family)
    if not spec.support.train_lora:
        raise spec.refusal("train_lora")


def check(job: Job, family: str, arch: str = "") -> None:
    spec = spec_for(family)
    scheduling.check(family, job.sampler)
    used = requested(job)
    for feature in used:
        if not getattr(spec.support, feature):
            raise spec.refusal(feature)
    slg = skip_layer_guidance_refusal(job)
    if slg:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"skip-layer guidance on {spec.label}: {slg}", job.job_id
        )
    if job.attention_maps and "composable" in used:
        # AND prompts widen the UNet's batch to every subprompt: not one prompt to map.
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            "attention maps read one prompt: not with AND prompts",
            job.job_id,
        )
    name = catalog.variant_of(arch)
    variant = spec.variant(name)
    if job.cfg > 1.0 and not variant.real_cfg:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"a {spec.label} {name.title()} model takes no negative prompt: set CFG scale to 1 "
            "(its guidance is the Distilled CFG Scale)",
            job.job_id,
        )
