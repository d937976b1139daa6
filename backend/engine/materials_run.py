"""A materials job run: each planned Marigold call, then one image per map.

Every call gets the job's init image (RGB) and a CPU generator seeded with the job's seed
(the engine's convention: a seed gives the same maps on any device), and Marigold's own
defaults for what the job leaves open. The prediction (values 0..1; normals -1..1) becomes
uint8 images: albedo in sRGB (a linear albedo is encoded with the sRGB curve), roughness and
metallic as their linear values on all three channels (Non-Color data), normals as
(n + 1) / 2. Progress counts UNet calls (steps x ensemble members); a cancel stops at the
next one.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from PIL import Image

from dreamwire.backend.library import Kind
from dreamwire.backend.library.marigold import MapSource
from dreamwire.backend.library.marigold import load as load_marigold
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult

from . import noise
from .loader import to_device
from .materials import MaterialsPlan, ModelCall
from .progress import Reporter


def run(job: Job, plan: MaterialsPlan, library, device, cache, reporter: Reporter) -> JobResult:
    t0 = time.perf_counter()
    seed = noise.resolve_seed(job.seed)
    picture = Image.fromarray(_rgb(job.init_image))
    settings = job.materials
    pipes = [_pipeline(call, library, device, cache, reporter) for call in plan.calls]
    steps = [settings.steps or pipe.default_denoising_steps for pipe in pipes]
    reporter.total = sum(s * settings.ensemble for s in steps)
    reporter.state("generating")
    made: dict[str, GeneratedImage] = {}
    for call, pipe, n in zip(plan.calls, pipes, steps, strict=True):
        with _counting(pipe.unet, reporter):
            prediction = pipe(
                picture,
                num_inference_steps=n,
                ensemble_size=settings.ensemble,
                processing_resolution=settings.resolution,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="np",
            ).prediction
        reporter.finish_pass(n * settings.ensemble)
        resolution = pipe.default_processing_resolution
        if settings.resolution is not None:
            resolution = settings.resolution
        for source in call.sources:
            info = (
                f"Marigold model: {call.model}, Map: {source.map}, Steps: {n}, "
                f"Ensemble size: {settings.ensemble}, Processing resolution: {resolution}, "
                f"Seed: {seed}"
            )
            image = map_image(prediction, source)
            made[source.map] = GeneratedImage(image=image, seed=seed, infotext=info, map=source.map)
    return JobResult(
        job_id=job.job_id,
        images=[made[m] for m in plan.maps],
        timings={"materials": time.perf_counter() - t0},
        model=", ".join(c.model for c in plan.calls),
        tag=job.tag,
    )


def map_image(prediction: np.ndarray, source: MapSource) -> np.ndarray:
    """One map as H x W x 3 uint8 from a Marigold prediction (T x H x W x 3, one image)."""
    target = prediction[source.target].astype(np.float32)
    if source.map == "normal":
        values = (np.clip(target, -1.0, 1.0) + 1.0) / 2.0
    elif source.channel is not None:
        values = np.repeat(target[..., source.channel : source.channel + 1], 3, axis=-1)
    elif source.linear:
        values = _srgb(np.clip(target, 0.0, 1.0))
    else:
        values = target
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def _srgb(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's encoding curve, as Blender's sRGB colour space decodes it."""
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _pipeline(call: ModelCall, library, device, cache, reporter: Reporter):
    entry = library.find(Kind.MARIGOLD, call.model)

    def load():
        reporter.state("loading_model", f"loading {entry.path.name}")
        pipe = load_marigold(entry, torch_dtype=device.dtype)
        to_device(dict(pipe.components), device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    pipe, _ = cache.get(("marigold", entry.name), load)
    return pipe


@contextlib.contextmanager
def _counting(unet, reporter: Reporter):
    """Progress and cancel at every UNet call (Marigold's pipelines take no step callback)."""
    calls = [0]

    def before(_module, _args):
        reporter.check_cancel()
        if calls[0]:
            reporter.step(calls[0])
        calls[0] += 1

    handle = unet.register_forward_pre_hook(before)
    try:
        yield
        reporter.step(calls[0])
    finally:
        handle.remove()
