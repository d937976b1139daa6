"""A `train_lora` job on the backend's queue (shared/lora_training.py): the folder found by
name in the model roots' `training/` folders, the LoRA written into the first root's LoRA
folder, progress per step (loss, seconds left), a sample picture with the job's prompt and
seed every N steps as the progress preview, and the last sample as the result.

Cancel stops after the step running now: the reporter raises `cancelled` from the step
callback and the loop saves the run's state before it goes (loop.py), so the same job sent
again with `train_lora.resume` goes on from there. The engine's cached UNet carries the LoRA
layers only while this job runs; the backend runs one job at a time per worker, so no
generation sees them, and they are gone (weights as they were) when it ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dreamwire.backend.engine.noise import resolve_seed
from dreamwire.backend.engine.progress import Reporter
from dreamwire.backend.library.library import check_name
from dreamwire.backend.library.scan import Kind, kind_folders
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult, Progress

from .layout import DATA_FOLDER
from .loop import StepReport
from .options import LoraTrainOptions, kohya_values
from .request import TrainRequest
from .run import output_path, run_training
from .state import load_state, state_path
from .uploads import remove as remove_pictures
from .uploads import write_pictures


def find_dataset(roots: list[Path], name: str) -> Path:
    """The folder `name` inside the first root's `training/` folder that has it; a name is
    a relative path there, as a model name is inside a model folder."""
    try:
        rel = check_name(name)
    except DreamwireError as exc:
        raise DreamwireError(
            ErrorCode.DATASET_EMPTY,
            f"training folder name {name!r} is refused: it is a folder inside a model "
            "root's training/ folder and may not be absolute or contain '..'",
        ) from exc
    for root in roots:
        folder = Path(root) / DATA_FOLDER / rel
        if folder.is_dir():
            return folder
    looked = ", ".join(str(Path(r) / DATA_FOLDER) for r in roots)
    raise DreamwireError(
        ErrorCode.DATASET_EMPTY, f"no training folder {rel!r} in {looked or 'no model root'}"
    )


def lora_folder(roots: list[Path]) -> Path:
    """The first root's LoRA folder (A1111's Lora, ComfyUI's loras), or a new models/Lora."""
    if not roots:
        raise DreamwireError(ErrorCode.INVALID_JOB, "this backend has no model root to train into")
    folders = kind_folders(Path(roots[0])).get(Kind.LORA)
    return folders[0] if folders else Path(roots[0]) / "models" / "Lora"


@dataclass
class _Sampler:
    """The job's sample picture on the model as it is now (LoRA layers included): its
    prompt, negative prompt, steps, CFG, size and seed, with the model's own scheduler."""

    family: str
    components: dict
    job: Job
    seed: int

    def picture(self) -> np.ndarray:
        from dreamwire.backend.engine import pipelines

        # A scheduler of its own: the cached model's is left as the engine keeps it.
        sched = self.components["scheduler"]
        pipe = pipelines.build(
            pipelines.pipeline_class(self.family, "txt2img"),
            self.family,
            self.components,
            type(sched).from_config(sched.config),
        )
        unet = self.components["unet"]
        was_training = unet.training
        unet.eval()
        try:
            # Its own generator: the training's draws are not touched.
            gen = torch.Generator("cpu").manual_seed(self.seed & (2**63 - 1))
            with torch.no_grad():
                out = pipe(
                    self.job.prompt,
                    negative_prompt=self.job.negative or None,
                    num_inference_steps=self.job.steps,
                    guidance_scale=self.job.cfg,
                    width=self.job.width,
                    height=self.job.height,
                    generator=gen,
                    output_type="np",
                )
        finally:
            unet.train(was_training)
        return (np.clip(out.images[0], 0.0, 1.0) * 255).round().astype(np.uint8)


def _seed(job: Job, request: TrainRequest) -> int:
    """The job's seed; a random one (-1) is the stopped run's own where there is one, so a
    resumed or restarted job draws on as before."""
    if job.seed < 0:
        file = state_path(output_path(request))
        if file.is_file():
            return load_state(file).identity.seed
    return resolve_seed(job.seed)


def job_request(job: Job, roots: list[Path], uploads: Path | None = None) -> TrainRequest:
    """The run a train_lora job asks for. Its settings carry kohya's names, read through
    the table the command line's arguments come from; its seed is the training's. Its own
    pictures are written into `uploads` (the backend's data folder) first."""
    t = job.train_lora
    data = write_pictures(uploads, job.job_id, t) if t.pictures else find_dataset(roots, t.data)
    request = TrainRequest.from_kohya(
        kohya_values(t, LoraTrainOptions, TrainRequest),
        data=data,
        name=t.name,
        lora_dir=lora_folder(roots),
        model=job.model,
        job_id=job.job_id,
    )
    seed = _seed(job, request)
    return replace(request, options=replace(request.options, seed=seed))


def run_job(engine, job: Job, reporter: Reporter, uploads: Path | None = None) -> JobResult:
    """`uploads`: where a job's own pictures go (serve: OUT/training); None: such a job is
    refused."""
    t = job.train_lora
    roots = list(engine.library.roots)
    request = job_request(job, roots, uploads)
    seed = request.options.seed
    reporter.state("loading_model", "reading the training folder and loading the model")
    model = engine.load(job.model, "", reporter)
    sampler = _Sampler(model.family, model.components, job, seed)
    clock = _Clock(time.perf_counter())
    last_sample: list[np.ndarray] = []

    def on_step(s: StepReport) -> None:
        every = t.sample_every_n_steps
        last = s.step == s.total
        preview = sampler.picture() if last or (every and s.step % every == 0) else None
        if last:
            last_sample.append(preview)  # while the trained layers are still on the UNet
        if reporter.on_progress is not None:
            eta = clock.eta(s.step, s.total)
            reporter.on_progress(
                Progress(job.job_id, "training", s.step, s.total, preview, loss=s.loss, eta=eta)
            )
        reporter.check_cancel()  # stops here: the loop saves the state of this step

    reporter.check_cancel()
    trained = run_training(engine, request, on_step)
    remove_pictures(request.data, uploads)
    engine.rescan_models()  # `<lora:name>` finds it at once
    info = (
        f"{job.prompt}\nTrained LoRA: {trained.path.stem}, Steps: {job.steps}, "
        f"CFG scale: {job.cfg:g}, Seed: {seed}, Size: {job.width}x{job.height}, "
        f"Model: {model.name}, Training steps: {t.max_train_steps}, "
        f"Network dim: {t.network_dim}, Network alpha: {t.network_alpha:g}"
    )
    return JobResult(
        job_id=job.job_id,
        # The sample after the last step (none when a resumed run had no step left).
        images=[GeneratedImage(image=img, seed=seed, infotext=info) for img in last_sample],
        timings={"train": time.perf_counter() - clock.started},
        model=model.name,
        tag=job.tag,
    )


@dataclass
class _Clock:
    """Seconds left, from the pace of this job's own steps (a resumed run's earlier steps
    ran in another job)."""

    started: float
    first_step: int = 0

    def eta(self, step: int, total: int) -> float:
        if not self.first_step:
            self.first_step = step
        pace = (time.perf_counter() - self.started) / (step - self.first_step + 1)
        return pace * (total - step)
