"""diffusers pipelines per model family and mode (the family spec names them), built over
shared components.

A pipeline object is only a thin holder of modules, so each job builds the one it needs
around the cached model's components: the UNet, VAE and text encoders are loaded once
and shared by txt2img, img2img and inpaint (and by the ControlNet variants, which a pass
runs when a conditioner adds a `controlnet` component: conditioners.attached_to_pass).
"""

from __future__ import annotations

import inspect
from typing import Any

from dreamwire import catalog
from dreamwire.backend.families import spec_for


def pipeline_class(
    family: str, mode: str, controlnet: bool = False, arch: str = "", control_model: bool = False
) -> type:
    """The pipeline for `mode` (a ControlNet one when units need it, a control-model one for
    a Flux Control LoRA); a special-purpose checkpoint (`arch`'s catalog variant, e.g. Flux
    Fill) has its own."""
    return spec_for(family).pipeline_class(
        mode, controlnet=controlnet, variant=catalog.variant_of(arch), control_model=control_model
    )


def build(
    cls: type,
    family: str,
    components: dict[str, Any],
    scheduler,
    extra: dict[str, Any] | None = None,
):
    """Instantiate `cls` around the shared components with this job's scheduler."""
    spec = spec_for(family)
    parts = {n: components[n] for n in spec.components if n != "scheduler"}
    takes = inspect.signature(cls.__init__).parameters
    parts |= {
        n: components[n]
        for n in spec.optional_components
        if n in takes and components.get(n) is not None
    }
    parts["scheduler"] = scheduler
    parts.update(extra or {})
    if spec.safety_checker_slot:
        # Artists' checkpoints carry no safety checker; the pipeline must not ask for one.
        parts.setdefault("safety_checker", None)
        parts.setdefault("feature_extractor", None)
        pipe = cls(**parts, requires_safety_checker=False)
    else:
        pipe = cls(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe
