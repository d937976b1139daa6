"""diffusers' own ControlNet pipelines around the engine's loaded components (the engine
tests' reference helpers with ControlNets attached)."""

from __future__ import annotations

import numpy as np
import torch

from dreamwire.backend.conditioning import controlnet_files
from tests.engine import reference
from tests.engine.reference import NEGATIVE, PIPE_ARGS, PROMPT, SIZE, maxdiff

__all__ = ["BASE", "NEGATIVE", "PIPE_ARGS", "PROMPT", "SIZE", "maxdiff", "load_net"]
__all__ += ["reference_pipe", "run", "run_job_settings", "noise_image"]

BASE = reference.JOB_BASE


def load_net(engine, path, model="tiny-sd1"):
    comps = engine.load(model).components
    info = controlnet_files.inspect(path)
    return controlnet_files.load(info, dict(comps["unet"].config), torch.float32, "cpu")


def reference_pipe(engine, cls_name: str, nets, sampler="Euler", model="tiny-sd1"):
    return reference.reference_pipe(engine, cls_name, sampler, model=model, controlnets=nets)


def run(pipe, seed: int, **kwargs) -> np.ndarray:
    return reference.run(pipe, seed, **kwargs)[0]


def run_job_settings(pipe, **kwargs) -> np.ndarray:
    """The first image of `reference.run_job_settings`: BASE's prompt, steps and guidance."""
    return reference.run_job_settings(pipe, **kwargs)[0]


def noise_image(seed: int, h: int = 64, w: int = 64, c: int = 3) -> np.ndarray:
    """Blocky random shapes: control images have structure at the latent scale (pixel noise
    averages out in the hint encoder's strided convolutions)."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 8, w // 8, c), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, axis=0).repeat(8, axis=1))
