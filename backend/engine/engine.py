"""The Engine: models, device and the job runner behind one object.

    engine = Engine(ModelLibrary([root]), device=None, low_vram=None, extensions=[...])
    result = engine.run(job, on_progress=..., should_cancel=...)

One job runs at a time (the server's queue serialises them); models stay cached between
jobs so an artist's second image does not pay for loading again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dreamwire.backend import samplers
from dreamwire.backend.families import family_infos
from dreamwire.backend.library.weight_formats import FULL, WeightFormat
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import family as family_spec
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.result import JobResult, Progress

from . import (
    admission,
    animatediff,
    composition,
    conditioners,
    host_memory,
    materials,
    materials_run,
    planning,
    preprocess_run,
    runner,
    sd_upscale,
    segment_run,
)
from . import device as dev
from . import library_adapter as libs
from .hooks import Conditioner, JobContext
from .loader import LoadedModel, model_cache, to_device
from .progress import Reporter
from .tiled_vae import should_tile

ProgressFn = Callable[[Progress], None]
# A train_lora job's runner (backend.training.job_run.run_job), injected like the
# conditioners: the engine never imports the training package below it.
TrainerFn = Callable[["Engine", Job, Reporter], JobResult]


class Engine:
    def __init__(
        self,
        library,
        device: str | None = None,
        low_vram: bool | None = None,
        cache_size: int | None = None,
        extensions: list[Conditioner] | None = None,
        vae_tile_px: int | None = None,
        trainer: TrainerFn | None = None,
    ):
        self.library = library
        self.trainer = trainer
        self.info = dev.pick_device(device)
        self.low_vram_flag = low_vram
        if cache_size is None:
            cache_size = 1 if low_vram else 2
        self.models = model_cache(cache_size, self.info)
        self.vaes = model_cache(cache_size, self.info)
        # The conditioners, injected by whoever builds the engine (cli.engine_options
        # .build_engine): the engine knows their interface, never the packages behind it.
        self.extensions = list(extensions or ())
        # The engine's own conditioners (regions, AND prompts), run after the injected ones.
        self.builtin = composition.builtin()
        self.vae_tile_px = vae_tile_px  # tile side in pixels; None: the VAE's native size
        # The estimate of the job running now (admission): what it holds is free to a job
        # being admitted while it runs. Replaced whole, so the server thread reads it safely.
        self._running_needs: list[admission.Need] = []

    # -- what this backend offers ----------------------------------------------------------
    def rescan_models(self) -> None:
        """Read the model folders again: a merge, a download or the artist added a file."""
        self.library.refresh()

    def loaded_models(self) -> list[str]:
        """The checkpoints cached now, least recently used first (the welcome's workers)."""
        keys = self.models.keys()
        return [k[1] for k in keys if isinstance(k, tuple) and k[0] == "model"]

    def capabilities(self) -> dict:
        return {
            "device": self.info.describe(),
            "dtype": str(self.info.dtype).replace("torch.", ""),
            "vram_free": dev.free_memory(self.info),
            "models": libs.names(self.library, "checkpoint"),
            "vaes": libs.names(self.library, "vae"),
            "loras": libs.names(self.library, "lora"),
            "embeddings": libs.names(self.library, "embedding"),
            "controlnets": libs.names(self.library, "controlnet"),
            "samplers": samplers.available_samplers(),
            "upscalers": _upscaler_names(self.library),
            "model_families": libs.families(self.library),
            "model_missing": libs.missing_parts(self.library),
            "model_weights": libs.stored_formats(self.library),
            "model_prediction": libs.predictions(self.library),
            "model_modes": self._model_modes(),
            "families": family_infos(),
            "materials": materials.offered(self.library),
            "motion_modules": animatediff.offered(self.library),
            "model_defaults": self._model_defaults(),
            "default_model": self._default_model_or_none(),
            **self._extension_capabilities(),
        }

    def _model_modes(self) -> dict[str, list[str]]:
        """{checkpoint: the modes its pipelines run}, as planning refuses the rest: the
        hosts offer an edit only on a model that lists "edit" (an edit model's variant)."""
        run = (JobMode.TXT2IMG, JobMode.IMG2IMG, JobMode.INPAINT, JobMode.EDIT, JobMode.LAYERS)
        # A Flux Control model runs no job by itself (only through a control unit); a
        # model the library only recognises (model_missing says why) runs none.
        units_only = {e.name for e in self.library.entries("checkpoint") if e.control_model}
        units_only |= libs.unsupported(self.library)
        out: dict[str, list[str]] = {}
        for name, (family, arch) in libs.checkpoint_archs(self.library).items():
            served = [m.value for m in run if planning.serves(family, m, arch)]
            out[name] = [] if name in units_only else served
        return out

    def _model_defaults(self) -> dict[str, dict]:
        """{checkpoint: its defaults} where they differ from its family's, so a host
        switching to Flux schnell or Kontext takes that model's steps and Distilled CFG."""
        out: dict[str, dict] = {}
        for name, (family, arch) in libs.checkpoint_archs(self.library).items():
            own = planning.model_defaults(family, arch)
            if own != family_spec(family).defaults:
                out[name] = own.to_wire()
        return out

    def _extension_capabilities(self) -> dict:
        """Keys the conditioners add to the welcome (ControlNet: the control types the
        ControlNet folders can serve per model family)."""
        out: dict = {}
        for conditioner in self.extensions:
            out.update(conditioner.capabilities(self.library))
        return out

    def _default_model_or_none(self) -> str | None:
        try:
            return self.default_model()
        except DreamwireError:
            return None  # no checkpoints: the welcome still goes out and says so

    def default_model(self) -> str:
        return libs.default_checkpoint(self.library)

    # -- models ----------------------------------------------------------------------------
    def load(self, name: str, vae: str = "", reporter: Reporter | None = None) -> LoadedModel:
        name = name or self.default_model()
        entry = libs.checkpoint(self.library, name)

        def load_model() -> LoadedModel:
            if reporter is not None:
                reporter.state("loading_model", f"loading {entry.path.name}")
            pipe = libs.load_pipeline(self.library, entry, self.info.dtype)
            weights = libs.weights(entry)
            comps = to_device(dict(pipe.components), self._placement(entry.arch, weights))
            return LoadedModel(
                weights=weights,
                name=entry.name,
                family=libs.family(entry.arch),
                components=comps,
                short_hash=libs.short_hash(self.library, entry),
                arch=entry.arch or "",
            )

        model, _ = self.models.get(("model", entry.name), load_model)
        if not vae:
            return model
        vae_entry = libs.vae(self.library, vae)

        def load_vae():
            if reporter is not None:
                reporter.state("loading_model", f"loading VAE {vae_entry.path.name}")
            module = libs.load_vae(self.library, vae_entry, entry.arch, self.info.dtype)
            return to_device({"vae": module}, self._placement(entry.arch, model.weights))["vae"]

        module, _ = self.vaes.get(("vae", vae_entry.name, entry.arch), load_vae)
        return model.with_vae(module, vae_entry.name, libs.short_hash(self.library, vae_entry))

    def low_vram(
        self, arch: str | None, weights: WeightFormat = FULL, control_models: int = 0
    ) -> bool:
        """Whether a model of `arch`, its denoiser stored as `weights` (a GGUF Q4 file
        fits where its bf16 original needs offload), runs in low-VRAM mode; a job's full
        Flux Control models (`control_models`) are second transformers beside it."""
        family = libs.family(arch)
        return dev.want_low_vram(
            self.info, family, self.low_vram_flag, weights, control_models, libs.variant(arch)
        )

    def _placement(
        self, arch: str | None, weights: WeightFormat = FULL, control_models: int = 0
    ) -> dev.DeviceInfo:
        """Where a model's weights live between steps: on the GPU, or in CPU memory when
        low-VRAM mode offloads them (they move to the GPU one module at a time)."""
        if self.info.device.type == "cuda" and self.low_vram(arch, weights, control_models):
            return dev.DeviceInfo(torch.device("cpu"), self.info.dtype)
        return self.info

    # -- admission -------------------------------------------------------------------------
    def check_memory(
        self, job: Job, job_plan: planning.JobPlan | None = None
    ) -> list[admission.Need]:
        """Raise `limit_exceeded` when the job's estimated peak (admission.py) does not fit
        the memory free now; else return the estimate. Loads no model; the server calls it
        before accepting a job, run() again before starting one (free memory changes while
        a job waits)."""
        here = self.workplace()
        needs = self.memory_needs(job, here, job_plan)
        refused = admission.refusal(job.job_id, needs, here.device)
        if refused is not None:
            raise refused
        return needs

    def workplace(self) -> admission.Workplace:
        """This engine's device and what is free there for the next job: while a job runs,
        what its passes hold counts as free (a job queued behind it starts only after it
        has ended)."""
        running = self._running_needs
        ram, vram = host_memory.available(), dev.free_memory(self.info)
        device = admission.Device(
            kind=self.info.kind,
            dtype_bytes=torch.finfo(self.info.dtype).bits // 8,
            ram_free=None if ram is None else ram + admission.released(running, "RAM"),
            vram_free=None if vram is None else vram + admission.released(running, "VRAM"),
            vae_tile_px=self.vae_tile_px,
        )
        return admission.Workplace(device, self.low_vram_flag, tuple(self.loaded_models()))

    def memory_needs(
        self, job: Job, where: admission.Workplace, job_plan: planning.JobPlan | None = None
    ) -> list[admission.Need]:
        """The job's estimated peak on `where`: this engine's workplace, or another
        worker's as it reported it (the model sizes come from this engine's library). What
        counts is what the job's plan loads: the Fill model an inpaint job runs on instead
        of the one it names, and the second transformer of a full Flux Control model."""
        if job.mode in (
            JobMode.MATERIALS,
            JobMode.SEGMENT,
            JobMode.TRAIN_LORA,
            JobMode.PREPROCESS,
        ):
            # Marigold's and SAM 2's folders, training and annotators are not estimated
            # (PROTOCOL.md): nothing is refused for memory.
            return []
        if job_plan is None:
            job_plan = self._quiet_plan(job)
        sized = self._model_size(job, job_plan, where.models)
        if sized is None:
            return []  # an unknown model: the run reports model_not_found
        seconds = job_plan.second_denoisers if job_plan is not None else ()
        device = where.device
        low_vram = dev.low_vram_at(
            device.vram_free if device.kind == "cuda" else None,
            libs.family(sized.arch),
            where.low_vram,
            sized.weights,
            len(seconds),
            libs.variant(sized.arch),
        )
        tiled = should_tile(job.tiled_vae, *runner.final_size(job), low_vram, job.seamless)
        native = family_spec(libs.family(sized.arch)).resolution.native
        second = tuple(admission.denoiser_params(sized.model, libs.params(e)) for e in seconds)
        shape = admission.shape(job, native, tiled, second)
        return admission.need(sized.model, shape, device, sized.resident)

    def _quiet_plan(self, job: Job) -> planning.JobPlan | None:
        """The job's plan, or None where planning refuses it (the run reports why)."""
        try:
            return planning.plan(job, self.library, self.extensions)
        except DreamwireError:
            return None

    def _model_size(
        self, job: Job, job_plan: planning.JobPlan | None, loaded: tuple[str, ...]
    ) -> _Sized | None:
        # The plan's checkpoint where it has one (an inpaint job's Fill model).
        name = job_plan.checkpoint if job_plan is not None and job_plan.checkpoint else None
        try:
            entry = libs.checkpoint(self.library, name or job.model or self.default_model())
        except DreamwireError:
            if job.mode is JobMode.UPSCALE and not job.upscale.refine:
                # A plain upscale loads no checkpoint: only its images count.
                return _Sized(admission.model_size(None, None), None, True)
            return None
        weights = libs.weights(entry)
        model = admission.model_size(entry.arch, libs.params(entry), weights)
        return _Sized(model, entry.arch, entry.name in loaded, weights)

    # -- jobs ------------------------------------------------------------------------------
    def run(
        self,
        job: Job,
        on_progress: ProgressFn | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> JobResult:
        try:
            return self._run(job, on_progress, should_cancel)
        except DreamwireError as exc:
            if not exc.job_id:
                exc.job_id = job.job_id
            raise
        except torch.cuda.OutOfMemoryError as exc:
            dev.empty_cache(self.info)
            raise DreamwireError(
                ErrorCode.OUT_OF_MEMORY,
                f"out of GPU memory: {exc}. Try a smaller size, tiled VAE or low-VRAM mode",
                job.job_id,
            ) from exc
        except Exception as exc:  # anything else is a bug; report it, never a traceback
            raise DreamwireError(
                ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", job.job_id
            ) from exc
        finally:
            self._running_needs = []

    def _run(self, job, on_progress, should_cancel) -> JobResult:
        # Every refusal that needs no model, before anything loads (planning.py): the
        # control units too, through the injected UnitPlanner.
        job_plan = planning.plan(job, self.library, self.extensions)
        self._running_needs = self.check_memory(job, job_plan)  # run() forgets it at the end
        reporter = Reporter(job.job_id, on_progress, should_cancel, job.preview_every)
        reporter.check_cancel()
        if job_plan.mode is JobMode.TRAIN_LORA:
            if self.trainer is None:
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED, "this backend was built without LoRA training"
                )
            return self.trainer(self, job, reporter)
        if job_plan.mode is JobMode.PREPROCESS:  # an annotator's map; no checkpoint
            return preprocess_run.run(job, self.library, self.extensions, reporter)
        if job_plan.mode is JobMode.UPSCALE and job_plan.upscale is None:
            return sd_upscale.plain(job, self.library, self.info, reporter)  # refine off
        if job_plan.materials is not None:  # Marigold's pipelines; no checkpoint
            return materials_run.run(
                job, job_plan.materials, self.library, self.info, self.models, reporter
            )
        if job_plan.segment_weights is not None:  # SAM 2; no checkpoint
            return segment_run.run(job, job_plan.segment_weights, self.info, self.models, reporter)
        if job_plan.subject is not None:  # a background-removal ONNX file; no checkpoint
            return segment_run.run_subject(job, job_plan.subject, reporter)
        t0 = time.perf_counter()
        # The plan's checkpoint: the job's, or the Fill model an inpaint job runs on.
        model = self.load(job_plan.checkpoint or job.model, job.vae, reporter)
        t_load = time.perf_counter() - t0
        reporter.family = model.family
        seconds = len(job_plan.second_denoisers)
        low_vram = self.low_vram(model.arch, model.weights, seconds)
        family = libs.family(model.arch)
        sequential = low_vram and dev.want_sequential(
            self.info, family, self.low_vram_flag, model.weights, seconds, libs.variant(model.arch)
        )
        # A no-op unless it changed.
        to_device(model.components, self._placement(model.arch, model.weights, seconds))
        ctx = JobContext(
            job=job,
            model=model,
            device=self.info,
            library=self.library,  # extensions resolve LoRA/ControlNet names in it
            low_vram=low_vram,
            sequential_offload=sequential,
            plan=job_plan,
        )
        extensions = [*self.extensions, *self.builtin]
        reporter.state("generating")
        with conditioners.attached_to_job(ctx, extensions):
            _check_handled(ctx)
            if job_plan.animatediff is not None:  # diffusers' AnimateDiff pipelines; no passes
                result = animatediff.run(ctx, reporter, extensions)
            else:
                result = runner.run(ctx, reporter, extensions, low_vram, self.vae_tile_px)
        result.timings["load"] = t_load
        result.timings["total"] = time.perf_counter() - t0
        return result


@dataclass(frozen=True)
class _Sized:
    model: admission.ModelSize
    arch: str | None
    resident: bool  # its weights are loaded already (they cost nothing more)
    weights: WeightFormat = FULL  # how the checkpoint's denoiser is stored


def _upscaler_names(library) -> list[str]:
    from dreamwire.backend.upscalers import names

    return names(library)


def _check_handled(ctx: JobContext) -> None:
    """A job asking for LoRA that no conditioner took on must not silently run without it
    (control units: planning refuses them without a UnitPlanner)."""
    job = ctx.job
    if job.loras and "loras" not in ctx.handled:
        raise DreamwireError(
            ErrorCode.LORA_NOT_FOUND, "this backend has no LoRA support loaded", job.job_id
        )
