"""A segment job run: SAM 2 on the init image with the job's clicks and box, one mask back
(segmentation/sam2_masks.py). The model stays in the engine's model cache between jobs, so
an artist's next click costs one forward pass. A select-subject job runs a background-
removal ONNX file instead (segmentation/subject_masks.py), its session kept between jobs
by onnx_sessions."""

from __future__ import annotations

import time
from pathlib import Path

from dreamwire.backend.segmentation import sam2_masks, subject_masks
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult

from .loader import to_device
from .progress import Reporter


def run(job: Job, weights: Path, device, cache, reporter: Reporter) -> JobResult:
    t0 = time.perf_counter()

    def load():
        reporter.state("loading_model", f"loading {weights.name}")
        model = sam2_masks.load_model(weights).eval().requires_grad_(False)
        to_device({"sam2": model}, device)
        return model

    model, _ = cache.get(("sam2", str(weights), weights.stat().st_mtime_ns), load)
    reporter.total = 1
    reporter.state("generating")
    reporter.check_cancel()
    mask = sam2_masks.predict(model, job.init_image, job.segment)
    reporter.step(1)
    seg = job.segment
    info = (
        f"SAM 2 model: {weights.name}, Clicks: "
        + " ".join(f"{'+' if c.positive else '-'}({c.x:g},{c.y:g})" for c in seg.clicks)
        + (f", Box: {','.join(f'{v:g}' for v in seg.box)}" if seg.box is not None else "")
    )
    return JobResult(
        job_id=job.job_id,
        images=[GeneratedImage(image=sam2_masks.mask_image(mask), seed=0, infotext=info)],
        timings={"segment": time.perf_counter() - t0},
        model=weights.name,
        tag=job.tag,
    )


def run_subject(job: Job, model: subject_masks.SubjectModel, reporter: Reporter) -> JobResult:
    t0 = time.perf_counter()
    reporter.state("loading_model", f"loading {model.path.name}")
    subject_masks.session(model)
    reporter.total = 1
    reporter.state("generating")
    reporter.check_cancel()
    mask = subject_masks.predict(model, job.init_image)
    reporter.step(1)
    info = f"Subject model: {model.path.name} ({model.known.recipe.family}, rembg's {model.known.name})"
    return JobResult(
        job_id=job.job_id,
        images=[GeneratedImage(image=subject_masks.mask_image(mask), seed=0, infotext=info)],
        timings={"segment": time.perf_counter() - t0},
        model=model.path.name,
        tag=job.tag,
    )
