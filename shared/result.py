"""What comes back from a job: images with their seeds and infotext, and progress events."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Progress states, in the order a job usually passes through them.
STATES = (
    "queued",
    "loading_model",
    "compiling",
    "generating",
    "decoding",
    "saving",
    "training",  # a train_lora job's steps
)


@dataclass
class HeatMap:
    """A DAAM attention map: where the denoiser looked at one word of the prompt."""

    word: str
    image: np.ndarray  # H x W uint8 greyscale, the image's size; min-max normalised


@dataclass
class GeneratedImage:
    image: np.ndarray  # H x W x 3 uint8 (RGB) or H x W x 4 (RGBA, inpaint layers)
    seed: int
    infotext: str  # A1111 "parameters" text, as stored in the PNG
    path: str = ""  # where the backend saved it; "" if not saved
    # Which PBR map a materials job's image is ("albedo", "roughness" ...; shared/materials
    # MATERIAL_MAPS); "" for a generated picture.
    map: str = ""
    # A layers job's image: its place in the stack, 0 the bottom; -1 for any other picture.
    layer: int = -1
    # The job's attention_maps: one per word of the prompt, in the prompt's order.
    heat_maps: list[HeatMap] = field(default_factory=list)


@dataclass
class JobResult:
    job_id: str
    images: list[GeneratedImage]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    model: str = ""
    tag: str = ""


@dataclass
class Progress:
    job_id: str
    state: str  # one of STATES
    step: int = 0
    total: int = 0
    preview: np.ndarray | None = None  # small H x W x 3 uint8
    message: str = ""  # human text, e.g. "loading sd15.safetensors"
    # A training step's loss and the seconds the run has left (train_lora jobs only).
    loss: float | None = None
    eta: float | None = None
