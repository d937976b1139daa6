"""The extension point for what changes how a job runs: one `Conditioner` per kind of
conditioning (LoRA, embeddings, ControlNet, T2I-Adapter, IP-Adapter), and the typed
`JobContext` they read.

    class MyConditioner(Conditioner):
        name = "my.kind"                          # its step hook's name (JobContext.step_hooks)
        def resolve(self, ctx): ...               # look up and check; None: nothing to do
        def attach_job(self, ctx, resolved): ...  # optional: around the job (LoRA weights)
        def attach(self, ctx, resolved, mode): ...  # around one pass; yields a PassPart

Whoever builds an Engine passes its conditioners in (the CLI and the server pass
`dreamwire.backend.conditioning.engine_extensions()`); the engine never imports the packages
that implement them. One of them may also be the `UnitPlanner` (unit_planning.py) that
resolves a job's control units when the job is planned. `conditioners.py` drives them: every
one resolves before anything is attached, and every context exits (restoring exactly) even
when the job fails or is cancelled, so cached models never keep a job's patches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dreamwire.backend.canvas.outpaint import Canvas
from dreamwire.backend.library import ModelLibrary
from dreamwire.shared.job import ControlUnit, Job

from .device import DeviceInfo
from .loader import LoadedModel

if TYPE_CHECKING:
    from .planning import JobPlan
    from .unit_planning import UnitQuery

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
class PassCall:
    """The pipeline call a pass is about to make, for a conditioner that hooks the call
    itself (AND prompts widen the UNet's batch): the built pipeline, the images in its
    batch, the job's CFG, the pass's encoded prompt schedule (prompting.PromptPlan or
    ClipT5Plan) and the schedule step being run (the pass's step callback moves it on)."""

    pipe: Any
    images: int
    cfg: float
    prompts: Any
    step: int = 0
    # The pass's picture and repaint mask as the pipeline gets them (img2img / inpaint;
    # None otherwise), for hooks that condition on them (a Z-Image Fun 2.x ControlNet).
    picture: Any = None
    mask: Any = None

    def embeds(self) -> Any:
        """The prompt embeddings of the step being run."""
        return self.prompts.at(self.step)


# Entered around the pipeline call, after every conditioner has attached for the pass.
CallHook = Callable[[PassCall], AbstractContextManager[Any]]


@dataclass
class PassPart:
    """What one conditioner adds to a pass: pipeline constructor components (a `controlnet`
    component makes the pass run the family's ControlNet pipeline), call arguments (e.g.
    image=..., scales), a step hook, registered under the conditioner's name, and a context
    around the pipeline call itself (hooks that need the built pipeline and the encoded
    prompts)."""

    components: dict[str, Any] = field(default_factory=dict)
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    step_hook: StepHook | None = None
    # Tokens (1 x N x width) appended after the prompt's text sequence, which the denoiser
    # attends to as if they were text (Flux Redux's image tokens after T5's).
    prompt_tokens: Any = None
    around_call: CallHook | None = None
    # The denoiser takes the control image in its own input (a Flux Control model): the
    # pass runs the family's control-model pipelines (FamilySpec.control_model_pipelines).
    control_model: bool = False


@dataclass
class PassPlan:
    """One pass as the attached conditioners shape it: the pipeline class (chosen in
    conditioners.attached_to_pass), extra constructor components and call arguments, and the
    contexts entered around the pipeline call, in the conditioners' order."""

    pipe_cls: type
    components: dict[str, Any] = field(default_factory=dict)
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    # Every conditioner's prompt tokens, in the order the conditioners attached.
    prompt_tokens: list[Any] = field(default_factory=list)
    around_call: list[CallHook] = field(default_factory=list)


@dataclass
class JobContext:
    """One job as it runs: what the engine resolved, typed, for its passes and extensions.

    `job` is the job as submitted, never replaced: what a pass runs that the job does not
    say (an SD upscale's tile size and axes) is the plan's, and the control units the
    passes run are `controls`."""

    job: Job
    model: LoadedModel
    device: DeviceInfo
    library: ModelLibrary | None = None  # the model library the job's names resolve in
    low_vram: bool = False
    # Low-VRAM at its deepest: one layer on the GPU at a time (memory_plan's "sequential").
    sequential_offload: bool = False
    width: int = 0  # generation size of the current pass
    height: int = 0
    seed: int = 0  # the first image's seed, resolved (-1 became a number)
    subseeds: list[int] = field(default_factory=list)  # variation seeds per image
    # The picture as the runner laid it out (img2img/inpaint; each tile of an SD upscale), so
    # extensions lay their images out the same way.
    canvas: Canvas | None = None
    embeddings: EmbeddingLookup | None = None
    embeddings_used: set[str] = field(default_factory=set)  # for the infotext's TI hashes
    # Encoded prompt schedules per (images, steps, hires pass): passes of one shape reuse them.
    prompt_cache: dict[tuple, Any] = field(default_factory=dict)
    plan: JobPlan | None = None  # what planning.plan laid out before anything loaded
    # The units the passes run: the plan's (the job's, plus an SD upscale's tile unit).
    # None when made: the plan's when there is one, else the job's own.
    controls: list[ControlUnit] | None = None
    handled: set[str] = field(default_factory=set)  # "loras" once applied
    step_hooks: StepHooks = field(default_factory=StepHooks)
    infotext_extra: dict[str, str] = field(default_factory=dict)  # e.g. "Lora hashes"
    # What each conditioner resolved for this job (only those with something to do), in the
    # order they were handed to the engine.
    resolved: dict[Conditioner, Any] = field(default_factory=dict)
    # State that several conditioners share for this job, by its class (state_of): e.g. the
    # pass's region filters, which regions and AND prompts both read.
    extension_state: dict[type, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.controls is None:
            planned = self.plan.units if self.plan is not None else None
            self.controls = (
                [u.unit for u in planned] if planned is not None else list(self.job.controls)
            )

    @property
    def inpaint_region(self) -> InpaintRegion | None:
        """The plan's "only masked" crop box on the canvas, and the canvas size."""
        layout = self.plan.canvas if self.plan is not None else None
        return layout.region if layout is not None else None

    def state_of(self, cls: type[T]) -> T:
        """The job's instance of an extension's state class, made on first use."""
        if cls not in self.extension_state:
            self.extension_state[cls] = cls()
        return self.extension_state[cls]


class Conditioner(ABC):
    """One kind of conditioning. The engine calls `resolve` for every conditioner before
    anything is attached (so bad input fails before a weight changes), then enters
    `attach_job` around the job and `attach` around each of its passes; a PassPart's step
    hook is registered under `name` for that pass and removed after it."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Its name in JobContext.step_hooks (a class attribute in subclasses)."""

    @abstractmethod
    def resolve(self, ctx: JobContext) -> Any:
        """What the job asks of this kind, looked up and checked (DreamwireError with a stable
        code otherwise); None when it asks nothing, and then nothing else is called."""

    def attach_job(self, ctx: JobContext, resolved: Any) -> AbstractContextManager[None]:
        """Around the whole job (e.g. LoRA weights patched in); restores exactly on exit."""
        return nullcontext()

    @abstractmethod
    def attach(
        self, ctx: JobContext, resolved: Any, mode: str
    ) -> AbstractContextManager[PassPart | None]:
        """Around one pass (`mode`, at ctx.width x ctx.height, ctx.canvas as the runner laid
        it out); yields what the pass needs, or None; restores exactly on exit."""

    def capabilities(self, library) -> dict:
        """Keys this kind adds to the welcome (e.g. the control types it can serve)."""
        return {}

    def offers_control(self, query: UnitQuery, kind: str) -> bool:
        """Whether a `kind` control unit naming no model would find a file for the query's
        model (asked at plan time, before it loads: SD upscale's tile unit)."""
        return False


# Called by a tap as tap(layer, attn, hidden_states, encoder_hidden_states) before the
# layer's own processor runs; what it returns is ignored (it observes, never changes).
AttentionTap = Callable[[str, Any, Any, Any], None]


class TapProcessor:
    """An attention processor that lets a named tap see a layer's inputs, then runs the
    layer's own processor unchanged (so its output is bit for bit what it was)."""

    def __init__(self, hook: str, layer: str, inner: Any, tap: AttentionTap) -> None:
        self.hook, self.layer, self.inner, self.tap = hook, layer, inner, tap

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        if encoder_hidden_states is not None:
            self.tap(self.layer, attn, hidden_states, encoder_hidden_states)
        return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)


def cross_attentions(unet) -> list[tuple[str, Any]]:
    """The UNet's cross-attention layers of its down and up blocks, by module name: the
    layers DAAM reads (its UNetCrossAttentionLocator; the mid block is left out)."""
    return [
        (name, module)
        for name, module in unet.named_modules()
        if name.endswith(".attn2") and name.startswith(("down_blocks.", "up_blocks."))
    ]


def tap_names(unet) -> list[str]:
    """The names of the taps attached to the UNet's cross-attention layers now."""
    return sorted(
        {
            m.processor.hook
            for _, m in cross_attentions(unet)
            if isinstance(m.processor, TapProcessor)
        }
    )


@contextmanager
def tapped_cross_attention(unet, hook: str, tap: AttentionTap) -> Iterator[list[str]]:
    """Attach `tap` under the name `hook` to every cross-attention layer for the block and
    put each layer's own processor back after it, whatever happens inside."""
    layers = cross_attentions(unet)
    originals = [m.processor for _, m in layers]
    try:
        for (name, module), inner in zip(layers, originals, strict=True):
            module.set_processor(TapProcessor(hook, name, inner, tap))
        yield [name for name, _ in layers]
    finally:
        for (_, module), inner in zip(layers, originals, strict=True):
            module.set_processor(inner)
