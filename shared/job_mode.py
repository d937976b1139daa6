"""What a job asks for, as a type: `JobMode`.

Every entry point says which kind of job it sends (Job.mode); the backend branches on that
instead of on which fields happen to be set. A job that names no mode (built by code that
predates the type, or sent by such a peer) means the mode its fields imply, the rule the
wire always had: `implied_mode`, used by Job.validate only.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from enum import Enum


class JobMode(str, Enum):
    """A str enum (Python 3.10 in Krita has no StrEnum), so its value is what the wire and
    the logs show, and `JobMode.TXT2IMG == "txt2img"` holds for readers not yet typed."""

    TXT2IMG = "txt2img"  # a prompt; no picture
    IMG2IMG = "img2img"  # the init image redrawn at `strength`
    INPAINT = "inpaint"  # the init image's masked part (or outpaint margins) repainted
    UPSCALE = "upscale"  # the init image enlarged (Job.upscale), optionally refined in tiles
    # The init image changed as the prompt instructs (Flux Kontext-style edit models); only
    # a family whose spec names an edit pipeline runs it.
    EDIT = "edit"
    # PBR maps (albedo, roughness, metallic, normal) predicted from the init image by
    # Marigold models (shared/materials.py); no checkpoint is loaded.
    MATERIALS = "materials"
    # The init image decomposed into `Job.layer_count` RGBA layers (Qwen-Image-Layered); the
    # result's images are the layers, bottom first (GeneratedImage.layer).
    LAYERS = "layers"
    # A batch of frames from a motion module (shared/animatediff.py); frames come back.
    ANIMATEDIFF = "animatediff"
    # A mask of the object the artist clicked in the init image, by SAM 2
    # (shared/segment.py); no checkpoint is loaded.
    SEGMENT = "segment"
    # A LoRA trained on a folder of pictures (shared/lora_training.py) into the LoRA folder;
    # the job's prompt and seed make its sample pictures.
    TRAIN_LORA = "train_lora"
    # The init image through `controls[0]`'s preprocessor: the annotator's map (what the
    # ControlNet would see) at the init image's size; no checkpoint is loaded.
    PREPROCESS = "preprocess"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def implied_mode(*, picture: bool, mask: bool, outpaint: bool, upscale: bool) -> JobMode:
    """The mode of a job that names none, from what it carries (an init image, a mask,
    outpaint margins, upscale settings), as the backend always read such a job."""
    if upscale:
        return JobMode.UPSCALE
    if mask or outpaint:
        return JobMode.INPAINT
    if picture:
        return JobMode.IMG2IMG
    return JobMode.TXT2IMG
