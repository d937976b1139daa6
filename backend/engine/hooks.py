"""Extension points for code that changes how a job runs (ControlNet, LoRA, embeddings).

The conditioning package plugs in here without editing the runner:

    class MyExtension(EngineExtension):
        def before_job(self, ctx): ...            # e.g. patch LoRA weights into ctx.model
        def pipeline_for(self, ctx, mode): ...    # e.g. a ControlNet pipeline for ctx.job.controls
        def after_job(self, ctx): ...             # undo what before_job did (always called)

`dreamwire.backend.conditioning.engine_extensions()` (if that package defines it) returns
the list of extensions an Engine uses by default. `after_job` runs even when the job fails
or is cancelled, so cached models never keep a job's patches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dreamwire.shared.job import Job

from .device import DeviceInfo
from .loader import LoadedModel

# step_hooks: called after every denoising step as hook(ctx, pipe, step, total, tensors);
# a returned dict updates the pipeline's callback tensors (e.g. swap prompt_embeds).
StepHook = Callable[["JobContext", Any, int, int, dict], "dict | None"]


@dataclass
class PassPlan:
    """What an extension wants for one pass: the pipeline class, extra constructor
    components (e.g. controlnet=...) and extra call arguments (e.g. image=..., scales)."""

    pipe_cls: type
    components: dict[str, Any] = field(default_factory=dict)
    call_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    job: Job
    model: LoadedModel
    device: DeviceInfo
    mode: str  # txt2img | img2img | inpaint (of the first pass)
    width: int = 0  # generation size of the current pass
    height: int = 0
    handled: set[str] = field(default_factory=set)  # "controls", "loras" once applied
    step_hooks: list[StepHook] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # free space for extensions
    infotext_extra: dict[str, str] = field(default_factory=dict)  # e.g. "Lora hashes"


class EngineExtension:
    def before_job(self, ctx: JobContext) -> None:
        return None

    def pipeline_for(self, ctx: JobContext, mode: str) -> PassPlan | None:
        return None

    def after_job(self, ctx: JobContext) -> None:
        return None


def default_extensions() -> list[EngineExtension]:
    try:
        module = importlib.import_module("dreamwire.backend.conditioning")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("dreamwire.backend.conditioning"):
            return []
        raise
    factory = getattr(module, "engine_extensions", None)
    return list(factory()) if factory else []
