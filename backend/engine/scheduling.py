"""The scheduler a pass samples with: an A1111 sampler over the checkpoint's betas (UNet
families), or the model's own flow-matching scheduler for a family that lists its samplers
(Flux: Euler over the shifted schedule its config describes).
"""

from __future__ import annotations

from dreamwire.backend import samplers
from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode


def check(family: str, sampler: str) -> None:
    """Refuse a sampler the family cannot run (before anything loads)."""
    names = spec_for(family).sampling.names
    if names is None:
        samplers.sampler_info(sampler)
    elif sampler not in names:
        spec = spec_for(family)
        raise DreamwireError(
            ErrorCode.UNKNOWN_SAMPLER,
            f"{spec.label} models sample with {', '.join(names)} (flow matching); "
            f"{sampler!r} is a sampler for UNet models",
        )


def make(family: str, sampler: str, model_scheduler):
    """A fresh scheduler for one pass (schedulers keep per-run state)."""
    if spec_for(family).sampling.names is None:
        return samplers.make_scheduler(sampler, model_scheduler.config)
    return type(model_scheduler).from_config(model_scheduler.config)


def infotext(family: str, sampler: str) -> dict[str, str]:
    """The Sampler / Schedule type fields A1111 and Forge write."""
    sampling = spec_for(family).sampling
    if sampling.names is None:
        return samplers.infotext_sampler(sampler)
    return {"Sampler": sampler, "Schedule type": sampling.schedule}
