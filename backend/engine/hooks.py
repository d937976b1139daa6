"""Extension points for code that changes how a job runs (ControlNet, LoRA, embeddings).

The conditioning package plugs in here without editing the runner:

    class MyExtension(EngineExtension):
        def before_job(self, ctx): ...            # e.g. patch LoRA weights into ctx.model
        def pipeline_for(self, ctx, mode): ...    # e.g. a ControlNet pipeline for ctx.controls
        def after_job(self, ctx): ...             # undo what before_job did (always called)

Whoever builds an Engine passes its extensions in (the CLI and the server pass
`dreamwire.backend.conditioning.engine_extensions()`); the engine never imports the packages
that implement them. `after_job` runs even when the job fails or is cancelled, so cached
models never keep a job's patches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dreamwire.backend.canvas.outpaint import Canvas
from dreamwire.shared.job import ControlUnit, Job

from .device import DeviceInfo
from .loader import LoadedModel

if TYPE_CHECKING:
    from .planning import JobPlan

# Called after every denoising step as hook(ctx, pipe, step, total, tensors); a returned dict
# updates the pipeline's callback tensors (e.g. swap prompt_embeds).
StepHook = Callable[["JobContext", Any, int, int, dict], "dict | None"]
T = TypeVar("T")
# "Only masked" inpainting: the crop box (x0, y0, x1, y1) on the canvas, and the canvas size.
InpaintRegion = tuple[tuple[int, int, int, int], tuple[int, int]]


class StepHooks:
    """Per-step hooks by name, called in the order they were first registered (as
    diffusers' HookRegistry keeps its hooks): registering a name again replaces that hook in
    place, removing it is exact, and nothing is told apart by attributes."""

    def __init__(self) -> None:
        self._hooks: dict[str, StepHook] = {}

    def register(self, name: str, hook: StepHook) -> None:
        self._hooks[name] = hook

    def remove(self, name: str) -> None:
        self._hooks.pop(name, None)

    def names(self) -> list[str]:
        return list(self._hooks)

    def __iter__(self) -> Iterator[StepHook]:
        return iter(list(self._hooks.values()))


class EmbeddingLookup(Protocol):
    """Textual-inversion embeddings by name, as the text encoder asks for them (an extension
    provides it: backend/conditioning/embeddings.py)."""

    def get(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class PassPlan:
    """What an extension wants for one pass: the pipeline class, extra constructor
    components (e.g. controlnet=...) and extra call arguments (e.g. image=..., scales)."""

    pipe_cls: type
    components: dict[str, Any] = field(default_factory=dict)
    call_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    """One job as it runs: what the engine resolved, typed, for its passes and extensions.

    `job` is the job as submitted, never replaced: what a pass runs that the job does not
    say (an SD upscale's tile size and axes) is the plan's, and the control units the
    passes run are `controls`."""

    job: Job
    model: LoadedModel
    device: DeviceInfo
    library: Any = None  # the model library the job's names resolve in
    low_vram: bool = False
    width: int = 0  # generation size of the current pass
    height: int = 0
    seed: int = 0  # the first image's seed, resolved (-1 became a number)
    subseeds: list[int] = field(default_factory=list)  # variation seeds per image
    # The picture as the runner laid it out (img2img/inpaint; each tile of an SD upscale), so
    # extensions lay their images out the same way.
    canvas: Canvas | None = None
    inpaint_region: InpaintRegion | None = None
    embeddings: EmbeddingLookup | None = None
    embeddings_used: set[str] = field(default_factory=set)  # for the infotext's TI hashes
    # Encoded prompt schedules per (images, steps, hires pass): passes of one shape reuse them.
    prompt_cache: dict[tuple, Any] = field(default_factory=dict)
    plan: JobPlan | None = None  # what planning.plan laid out before anything loaded
    # The units the passes run: the job's, plus those the engine adds (an SD upscale's tile
    # ControlNet, sd_upscale.prepare). None when made: the job's own.
    controls: list[ControlUnit] | None = None
    handled: set[str] = field(default_factory=set)  # "controls", "loras" once applied
    step_hooks: StepHooks = field(default_factory=StepHooks)
    infotext_extra: dict[str, str] = field(default_factory=dict)  # e.g. "Lora hashes"
    # Each extension's own typed state for this job, by its class (state_of).
    extension_state: dict[type, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.controls is None:
            self.controls = list(self.job.controls)

    def state_of(self, cls: type[T]) -> T:
        """The job's instance of an extension's state class, made on first use."""
        if cls not in self.extension_state:
            self.extension_state[cls] = cls()
        return self.extension_state[cls]


class EngineExtension:
    def before_job(self, ctx: JobContext) -> None:
        return None

    def pipeline_for(self, ctx: JobContext, mode: str) -> PassPlan | None:
        return None

    def after_job(self, ctx: JobContext) -> None:
        return None
