"""Typed description of one model file or folder found in a models root."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Kind(str, Enum):
    CHECKPOINT = "checkpoint"
    VAE = "vae"
    LORA = "lora"
    EMBEDDING = "embedding"
    CONTROLNET = "controlnet"
    UPSCALER = "upscaler"
    # Stand-alone text encoders (Flux's clip_l.safetensors, t5xxl_fp16.safetensors, GGUF T5).
    TEXT_ENCODER = "text_encoder"
    # Image encoders (ComfyUI's models/clip_vision: SigLIP for Flux Redux) and style models
    # (models/style_models: Flux Redux).
    CLIP_VISION = "clip_vision"
    STYLE_MODEL = "style_model"
    # Marigold diffusers folders (prs-eth's IID and normals models): PBR maps from an image.
    MARIGOLD = "marigold"


class Format(str, Enum):
    SAFETENSORS = "safetensors"
    DIFFUSERS = "diffusers"
    PICKLE = "pickle"  # .ckpt / .pt / .pth / .bin: untrusted code, never unpickled freely
    GGUF = "gguf"  # llama.cpp's quantized format (city96's Flux files, GGUF T5)


@dataclass
class ModelEntry:
    kind: Kind
    # As A1111 shows it: the path relative to the kind folder, without extension, "/"-separated.
    name: str
    path: Path
    format: Format
    # Architecture from the catalog ("sd1", "sd2-v", "sdxl-base", "tiny-sd1", ...) or a
    # family guess for add-ons ("sd1", "sdxl"); None when it cannot be told from the header.
    arch: str | None = None
    root: Path | None = None
    detail: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def control_model(self) -> bool:
        """A Flux Canny/Depth Control model (flux_identify's "control" variant): it runs only
        through a control unit, with the control image in its input."""
        return self.detail.get("variant") == "control"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "path": str(self.path),
            "format": self.format.value,
            "arch": self.arch,
        }
