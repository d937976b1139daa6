"""A job planned before anything loads: `plan(job, library, conditioners) -> JobPlan`.

A pure function of the job and what the library already knows from files (names, headers,
the catalog's configs): no model is loaded and no tensor made. It raises every refusal it
can see that early (the job's own fields, the sampler, upscaler and LoRA names,
hypernetworks, a mode the family cannot run, every control unit that cannot run, an empty
mask) and lays out what the run will do, typed:

- the mode, the family of the model, the passes with their sizes and sampling steps, the
  size and seamless axes the passes run at;
- the LoRAs with their multipliers; the regions and whether a pass composes its prompt;
- the control units (`units`, engine/unit_planning.py): each resolved to its file, checked
  against the checkpoint's denoiser config as the library reads it from files
  (`ModelOutline`), with its kind (the conditioner that runs it), its start/end window and
  its infotext entry; grouped by kind in `unit_kinds`. The `UnitPlanner` among the injected
  conditioners resolves them (the engine never imports the conditioning package); without
  one, a job with units is refused;
- the canvas of an img2img or inpaint job (`canvas`, backend/canvas/layout.py): the size the
  picture is resized to, the outpaint growth, the repaint mask and "only masked"'s crop box;
- the infotext fields known before running (`infotext`; the units' entries are theirs).

The runner and the conditioners take these from the plan instead of working them out again.
What only the loaded model can tell is checked after loading, before anything attaches (an
IP-Adapter's fit against the UNet module: unit_resolution.check_loaded).

An SD upscale (refine on) is planned as its tile pass: the plan carries the tile grid
(sd_upscale.plan, also pure), the tile's size, the axes a tile wraps and the tile ControlNet
unit when one is wanted and offered, so the job itself stays the artist's from start to end.
A plain upscale lists no passes, nor does a materials job (its Marigold calls are
`JobPlan.materials`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dreamwire import catalog
from dreamwire.backend import prompts, samplers
from dreamwire.backend.canvas import layout
from dreamwire.backend.canvas.layout import CanvasPlan
from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import GenerationDefaults
from dreamwire.shared.job import ControlUnit, Job, LoraRef, Region
from dreamwire.shared.job_mode import JobMode

from . import family_support, hires, inpaint_model
from . import library_adapter as libs
from .seamless_upscale import tile_axes
from .unit_planning import ModelOutline, PlannedUnit, UnitPlanner, UnitQuery, by_kind

if TYPE_CHECKING:
    from dreamwire.backend.segmentation.subject_masks import SubjectModel

    from .animatediff import AnimateDiffPlan
    from .hooks import Conditioner
    from .materials import MaterialsPlan
    from .sd_upscale import Plan as UpscalePlan


@dataclass(frozen=True)
class PlannedPass:
    # The pipeline's mode: TXT2IMG, IMG2IMG, INPAINT or EDIT (Hires.fix's second pass and an
    # SD upscale's tiles are IMG2IMG).
    mode: JobMode
    width: int  # the size the pass samples at
    height: int
    steps: int  # the job's sampling steps for the pass (A1111's "Steps")
    strength: float = 1.0  # denoising: img2img and inpaint start part-way
    hires: bool = False  # the second pass of Hires.fix
    # A1111's "fixed" img2img steps: the pass runs `steps` model steps (Hires.fix's second
    # pass always does, A1111 passes it its steps) instead of the tail of a `steps` schedule.
    fixed_steps: bool = False

    @property
    def schedule(self) -> StepSchedule:
        return step_schedule(self.mode, self.steps, self.strength, self.fixed_steps)

    @property
    def executed_steps(self) -> int:
        return self.schedule.executed


@dataclass(frozen=True)
class StepSchedule:
    """The sigma schedule a pass is laid out on and how much of it runs: the pass builds the
    sampler's schedule for `length` steps and runs its last `executed` ones."""

    length: int
    executed: int

    @property
    def start(self) -> int:
        """The index in the schedule of the first step that runs."""
        return self.length - self.executed


def step_schedule(mode: JobMode, steps: int, strength: float, fixed: bool = False) -> StepSchedule:
    """A1111's setup_img2img_steps: an img2img or inpaint pass (Hires.fix's second pass, an SD
    upscale's tiles) with t_enc = int(min(strength, 0.999) * steps) samples
    sigmas[steps - t_enc - 1:], t_enc + 1 steps; `fixed` (A1111's Hires steps, which every
    Hires.fix pass gives, or its img2img_fix_steps option) builds the schedule for
    int(steps / min(strength, 0.999)) steps and runs exactly `steps` of them.

    diffusers' own img2img would run int(steps * strength) of `steps`: a 20-step pass at 0.5
    runs 10 there, 11 in A1111 (20 with fixed steps). At strength 0 nothing runs, the
    picture is the answer (A1111 would still take one step at its lowest sigma)."""
    if mode in (JobMode.TXT2IMG, JobMode.EDIT):
        return StepSchedule(steps, steps)
    if strength <= 0 or steps < 1:
        return StepSchedule(steps, 0)
    denoise = min(strength, 0.999)
    if fixed:
        return StepSchedule(int(steps / denoise), steps)
    return StepSchedule(steps, int(denoise * steps) + 1)


def executed_steps(mode: JobMode, steps: int, strength: float, fixed: bool = False) -> int:
    """Sampling steps a pass runs (step_schedule)."""
    return step_schedule(mode, steps, strength, fixed).executed


@dataclass(frozen=True)
class LoraRequest:
    name: str
    unet: float  # multiplier of the UNet's deltas
    text: float  # multiplier of the text encoders' deltas


@dataclass(frozen=True)
class JobPlan:
    mode: JobMode
    family: str  # the model's family key ("" for a plain upscale, which loads no model)
    # An SD upscale lists its tile pass once; it runs for every tile of `upscale.grid`.
    passes: tuple[PlannedPass, ...]
    loras: tuple[LoraRequest, ...]
    # A1111's p.width x p.height, the infotext's Size: the job's; an SD upscale's tile.
    size: tuple[int, int]
    # The axes the passes' convolutions wrap (seamless.py): the job's, except on an SD
    # upscale's tiles, which wrap only along an axis one tile spans whole (seamless_upscale).
    seamless: str
    upscale: UpscalePlan | None = None  # an SD upscale's result size and tile grid
    # Regional prompts (Latent Couple), in the job's order: the regions conditioner's filters.
    regions: tuple[Region, ...] = ()
    # Whether a pass's prompt is composable (AND, a weighted prompt or regions): the passes'
    # UNet batch widens to every subprompt (the composable-prompt conditioner).
    composable: bool = False
    # The control units the passes run, in order (the job's, then an SD upscale's tile
    # unit), each with its file, its kind and its window (unit_planning.py).
    units: tuple[PlannedUnit, ...] = ()
    # The checkpoint as the library knows it unloaded, when the units needed it.
    model: ModelOutline | None = None
    # How an img2img or inpaint job lays its picture out: the size it is resized to, the
    # outpaint growth, "only masked"'s crop box (canvas/layout.py).
    canvas: CanvasPlan | None = None
    # Infotext fields known before running, in the order A1111 adds them to its
    # extra_generation_params (the SD upscale script's keys, "Masked content"); the units'
    # "ControlNet N" entries are their own (PlannedUnit.infotext).
    infotext: tuple[tuple[str, str], ...] = ()
    # A materials job's Marigold calls (materials.py); it lists no passes.
    materials: MaterialsPlan | None = None
    # An animatediff job's motion module (animatediff.py); it lists no passes.
    animatediff: AnimateDiffPlan | None = None
    # A segment job's SAM 2 weights (segmentation/sam2_masks.py); it lists no passes.
    segment_weights: Path | None = None
    # A select-subject segment job's background-removal model (segmentation/subject_masks.py).
    subject: SubjectModel | None = None

    @property
    def second_denoisers(self) -> tuple:
        """Library entries of the whole denoisers the units load beside the checkpoint's
        (full Flux Control models): the memory plan and admission count them."""
        return tuple(u.denoiser_entry for u in self.units if u.denoiser_entry is not None)

    # The checkpoint the job runs on ("": the job's), and the job's own when the plan picked
    # another in its place (an inpaint job on Flux dev runs on a Flux Fill: inpaint_model.py).
    checkpoint: str = ""
    stands_in_for: str = ""

    @property
    def total_steps(self) -> int:
        return sum(p.executed_steps for p in self.passes)

    @property
    def unit_kinds(self) -> dict[str, tuple[PlannedUnit, ...]]:
        """The units grouped by the kind of conditioner that runs them."""
        return by_kind(self.units)

    def units_of(self, kind: str) -> tuple[PlannedUnit, ...]:
        return tuple(u for u in self.units if u.kind == kind)


def plan(job: Job, library, conditioners: Sequence[Conditioner] = ()) -> JobPlan:
    """The job's plan; DreamwireError with a stable code for anything refusable now.
    `conditioners` are the engine's injected ones: the `UnitPlanner` among them resolves
    the control units, and any may offer SD upscale's tile unit."""
    job.validate()
    samplers.sampler_info(job.sampler)  # unknown names fail before any loading
    if job.hires is not None:
        hires.check_upscaler(job, library)
    size = (job.width, job.height)
    if job.mode is JobMode.MATERIALS:
        from . import materials

        return JobPlan(
            JobMode.MATERIALS, "", (), (), size, "none", materials=materials.plan(job, library)
        )
    if job.mode is JobMode.PREPROCESS:  # one annotator on the init image; no checkpoint
        return JobPlan(JobMode.PREPROCESS, "", (), (), size, "none")
    if job.mode is JobMode.TRAIN_LORA:
        # The family from the library's entry, refused before the trainer reads its folder
        # and loads the model (it loads it itself).
        entry = libs.checkpoint(library, job.model or libs.default_checkpoint(library))
        family = libs.family(entry.arch)
        family_support.check_training(family)
        return JobPlan(JobMode.TRAIN_LORA, family, (), (), size, "none")
    if job.mode is JobMode.SEGMENT and job.segment.subject:
        from dreamwire.backend.segmentation import subject_masks

        subject = subject_masks.find(library.roots, job.segment.model)
        return JobPlan(JobMode.SEGMENT, "", (), (), size, "none", subject=subject)
    if job.mode is JobMode.SEGMENT:
        from dreamwire.backend.segmentation import sam2_masks

        weights = sam2_masks.find(library.roots, job.segment.model)
        return JobPlan(JobMode.SEGMENT, "", (), (), size, "none", segment_weights=weights)
    if job.mode is JobMode.UPSCALE:
        from . import sd_upscale

        sd_upscale.check_upscaler(job, library)
        if not job.upscale.refine:
            return JobPlan(JobMode.UPSCALE, "", (), (), size, job.seamless)
    loras = lora_requests(job)
    entry = libs.checkpoint(library, job.model or libs.default_checkpoint(library))
    family = libs.family(entry.arch)
    _check_not_control_model(entry)
    if job.mode is JobMode.ANIMATEDIFF:
        from . import animatediff

        ad = animatediff.plan(job, library, family, entry.arch)
        return JobPlan(
            JobMode.ANIMATEDIFF,
            family,
            (),
            loras,
            size,
            "none",
            animatediff=ad,
            checkpoint=entry.name,
        )
    family_support.check(job, family, entry.arch)  # features and samplers it cannot run
    if job.mode is JobMode.UPSCALE:
        job_plan = _upscale_plan(job, family, loras)
    else:
        passes = _passes(job)
        fill = inpaint_model.stand_in(job, entry, family, library)
        asked, entry = entry.name, fill or entry
        for p in passes:
            _check_served(p.mode, family, entry)
        job_plan = JobPlan(
            job.mode, family, passes, loras, size, job.seamless, canvas=_canvas(job, passes)
        )
        if fill is not None:
            job_plan = replace(job_plan, checkpoint=fill.name, stands_in_for=asked)
    job_plan = _with_prompts(job_plan, job)
    job_plan = replace(job_plan, infotext=_infotext(job, job_plan))
    return _with_units(job_plan, job, library, entry, conditioners)


def _infotext(job: Job, job_plan: JobPlan) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    if job_plan.upscale is not None:
        from . import sd_upscale

        # The script's keys, as it sets them (before ControlNet adds its own).
        fields.append((sd_upscale.OVERLAP_KEY, str(job_plan.upscale.grid.overlap)))
        fields.append((sd_upscale.UPSCALER_KEY, job.upscale.upscaler))
        if job.seamless != "none":
            fields.append((sd_upscale.SEAMLESS_KEY, job.seamless))
    if job.mode is JobMode.INPAINT:
        from .masked_content import ORIGINAL

        if job.inpaint_fill != ORIGINAL:
            fields.append(("Masked content", job.inpaint_fill))  # A1111 omits "original"
    return tuple(fields)


def _wants_tile(job_plan: JobPlan, job: Job) -> bool:
    """An SD upscale asking for a tile ControlNet, with no tile unit of its own."""
    return (
        job_plan.upscale is not None
        and job.upscale.tile_control
        and not any(c.type == "tile" for c in job.controls)
    )


def outline(entry, family: str) -> ModelOutline:
    """The checkpoint unloaded: its denoiser's config from the files loading reads it from
    (a model that cannot load fails here as loading would)."""
    config = libs.denoiser_config(entry, spec_for(family).denoiser)
    if config is None:
        libs.require_arch(entry)  # an unknown or unreadable architecture: loading's refusal
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{entry.name}: no {spec_for(family).denoiser} config is known for its "
            f"architecture {entry.arch!r}",
        )
    return ModelOutline(entry.name, family, entry.arch or "", config)


def _with_units(job_plan: JobPlan, job: Job, library, entry, conditioners) -> JobPlan:
    """The plan with the control units its passes run, each resolved to its file and
    checked against the checkpoint before it loads."""
    units: list[ControlUnit] = list(job.controls)
    tile = _wants_tile(job_plan, job)
    if not units and not tile:
        return job_plan
    query = UnitQuery(job, library, outline(entry, job_plan.family))
    if tile and any(c.offers_control(query, "tile") for c in conditioners):
        # Krita AI Diffusion guides each tile with a tile ControlNet fed the tile itself.
        units.append(ControlUnit(type="tile", image=None, preprocessor="none"))
    if not units:
        return replace(job_plan, model=query.model)
    planner = next((c for c in conditioners if isinstance(c, UnitPlanner)), None)
    if planner is None:
        # A job asking for control units must not silently run without them.
        raise DreamwireError(
            ErrorCode.CONTROLNET_NOT_FOUND, "this backend has no ControlNet support loaded"
        )
    return replace(job_plan, units=planner.plan_units(query, units), model=query.model)


# How Latent Couple's "Prompt Info Update" joins the general and region prompts.
REGION_SEPARATOR = "\nAND "


def hires_prompts(job: Job) -> tuple[str, str]:
    """The Hires.fix pass's prompt and negative prompt: A1111's "Hires prompt" fields, each
    falling back to the job's own when left empty."""
    hires = job.hires
    return (hires.prompt or job.prompt, hires.negative or job.negative)


def join_regions(prompt: str, regions) -> str:
    """The composable prompt a pass encodes: the background, then each region's prompt."""
    if not regions:
        return prompt
    return REGION_SEPARATOR.join([prompt, *(r.prompt for r in regions)])


def pass_prompt(job: Job, hires_pass: bool = False) -> str:
    """The prompt text a pass encodes (Hires.fix's second pass: its hires prompt), with the
    job's regions joined on."""
    prompt = hires_prompts(job)[0] if hires_pass else job.prompt
    return join_regions(prompt, job.regions)


def _composable(text: str) -> bool:
    # As text_encoding.encode_conditioning decides it: extra-network tags out, split on AND.
    parts = prompts.split_subprompts(prompts.extract_extra_networks(text)[0])
    return prompts.is_composable(parts)


def _with_prompts(job_plan: JobPlan, job: Job) -> JobPlan:
    """The plan with what its passes' prompts need: the regions, and whether a pass's batch
    widens for a composable prompt."""
    composable = any(_composable(pass_prompt(job, p.hires)) for p in job_plan.passes)
    return replace(job_plan, regions=tuple(job.regions), composable=composable)


def serves(family: str, mode: JobMode, arch: str = "") -> bool:
    """Whether the family's spec names a pipeline for `mode` (edit: only edit models'); a
    special-purpose checkpoint (`arch`'s catalog variant: Flux Fill) has its own table."""
    return spec_for(family).variant(catalog.variant_of(arch)).pipelines.has(mode.value)


def model_defaults(family: str, arch: str = "") -> GenerationDefaults:
    """The generation defaults of a checkpoint: its family's, or its catalog variant's
    where they differ (Flux schnell's 4 steps, Kontext's Distilled CFG 2.5)."""
    return spec_for(family).defaults(catalog.variant_of(arch))


def _check_not_control_model(entry) -> None:
    """A Flux Canny/Depth Control model (the library's "control" variant) needs a control
    image in its input at every step: it runs through a control unit, not as the model."""
    if entry.control_model:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{entry.name} is a Flux Control model (canny/depth): add it to a canny or depth "
            "control unit of a job on Flux dev, with the picture to follow as the unit's image",
        )


def _check_served(mode: JobMode, family: str, entry) -> None:
    if serves(family, mode, entry.arch):
        return
    label = spec_for(family).label
    variant = catalog.variant_of(entry.arch)
    kind = f"{label} {variant.title()}" if variant else label
    if mode is JobMode.EDIT:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"an edit job needs an edit model (a Flux Kontext-style checkpoint); {entry.name} "
            f"is a {kind} model, which has no edit pipeline",
        )
    if mode is JobMode.LAYERS:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"a layers job needs a layered model (Qwen-Image-Layered); {entry.name} is a "
            f"{kind} model, which cannot split a picture into layers",
        )
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        f"{entry.name} is a {kind} model, which cannot run {mode.value} jobs",
    )


def _upscale_plan(job: Job, family: str, loras: tuple[LoraRequest, ...]) -> JobPlan:
    """A1111's SD upscale script runs each tile as an img2img job of the tile's size (its
    p.width/p.height, which the infotext reports)."""
    from . import sd_upscale

    grid_plan = sd_upscale.plan(job, family)
    grid = grid_plan.grid
    tile = PlannedPass(JobMode.IMG2IMG, grid.tile_w, grid.tile_h, job.steps, job.strength)
    return JobPlan(
        JobMode.UPSCALE,
        family,
        (tile,),
        loras,
        (grid.tile_w, grid.tile_h),
        tile_axes(grid),
        grid_plan,
    )


def lora_requests(job: Job) -> tuple[LoraRequest, ...]:
    """The job's LoRAs, then the prompt's `<lora:name:w>` tags (A1111: only the positive
    prompt's tags activate networks); a tag's second weight is the text encoders'."""
    refs: list[LoraRef] = list(job.loras) + _prompt_loras(job.prompt)
    return tuple(
        LoraRequest(r.name, r.weight, r.weight if r.weight_te is None else r.weight_te)
        for r in refs
    )


def _prompt_loras(text: str) -> list[LoraRef]:
    _, nets = prompts.extract_extra_networks(text)
    for net in nets:
        if net.kind == "hypernet":
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"<hypernet:{net.name}>: hypernetworks are a legacy A1111 feature Dreamwire does "
                "not run; use a LoRA instead (<lora:name:weight>)",
            )
    return prompts.lora_refs(nets)


def _canvas(job: Job, passes: tuple[PlannedPass, ...]) -> CanvasPlan | None:
    if job.mode is JobMode.IMG2IMG:
        return layout.img2img(job)
    if job.mode is JobMode.INPAINT:
        (only,) = passes
        return layout.inpaint(job, (only.width, only.height))
    return None


def _passes(job: Job) -> tuple[PlannedPass, ...]:
    if job.mode is JobMode.TXT2IMG:
        first = PlannedPass(JobMode.TXT2IMG, job.width, job.height, job.steps)
        if job.hires is None:
            return (first,)
        w, h = job.hires.plan(job.width, job.height).size
        second = PlannedPass(
            JobMode.IMG2IMG,
            w,
            h,
            hires.second_pass_steps(job.steps, job.hires),
            strength=job.hires.denoise,
            hires=True,
            fixed_steps=True,
        )
        return (first, second)
    if job.mode is JobMode.IMG2IMG:
        return (PlannedPass(JobMode.IMG2IMG, job.width, job.height, job.steps, job.strength),)
    if job.mode in (JobMode.EDIT, JobMode.LAYERS):
        # An edit model redraws the whole picture from the instruction, a layered one
        # draws every layer from noise: every step runs.
        return (PlannedPass(job.mode, job.width, job.height, job.steps),)
    w, h = job.width, job.height
    if job.outpaint.any() and not job.inpaint_full_res:
        from dreamwire.backend.canvas.outpaint import generation_size

        w, h = generation_size(w, h, job.outpaint)
    return (PlannedPass(JobMode.INPAINT, w, h, job.steps, job.strength),)
