"""Edit Texture: the active material's image texture changed as the prompt instructs, on
an edit model (Flux Kontext); the job, its size and the result's name, without Blender.

As Upscale (core/upscale.py, after Dream Textures): the result is a new image named
"<name> (Edited)" (an earlier one of that name is reused), and the texture node that
showed the source is pointed at it; the source stays, so the artist can compare and undo
by switching back.
"""

from __future__ import annotations

import math

import numpy as np

from dreamwire.shared.families import ModelFamily
from dreamwire.shared.family_support import check_job, check_mode, edit_refusal
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.panel_job import panel_job

from .job_builder import GenerationSettings
from .upscale import resize_alpha

SUFFIX = " (Edited)"
STEP = 8  # the job's sides are multiples of this


def edited_name(name: str) -> str:
    """Editing an edit again does not stack suffixes ("Wall (Edited)" edits into itself)."""
    return name if name.endswith(SUFFIX) else name + SUFFIX


def edit_size(width: int, height: int, family: ModelFamily) -> tuple[int, int]:
    """The job's size for a width x height texture: its own, shrunk to the family's pixel
    budget when larger (an edit model composes at about its native size; a 4K texture
    would only cost time), each side a multiple of 8."""
    res = family.resolution
    scale = min(1.0, math.sqrt(res.max_pixels / max(1, width * height)))
    scale = min(scale, res.max_side / max(width, height, 1))

    def snap(side: int) -> int:
        return max(STEP, int(side * scale) // STEP * STEP)

    return snap(width), snap(height)


def flatten(pixels: np.ndarray) -> np.ndarray:
    """H x W x 3: the texture's RGB over white where it is transparent, as Krita's edit
    flattens a layer (the model sees what the artist sees on a white page)."""
    rgb = pixels[..., :3].astype(np.float32)
    if pixels.shape[2] == 4:
        a = pixels[..., 3:4].astype(np.float32) / 255.0
        rgb = rgb * a + 255.0 * (1.0 - a)
    return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture at the job's size (bilinear per channel), so the model sees all of it."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.stack([resize_alpha(rgb[..., c], width, height) for c in range(3)], axis=2)


def build_edit_job(pixels: np.ndarray, s: GenerationSettings, welcome, tag: str = "") -> Job:
    """A validated edit Job for an H x W x 3|4 uint8 texture (top row first): the panel's
    prompt is the instruction. Refused before sending on a model that is not an edit
    model, in the words the panel shows (shared.family_support.edit_refusal). `welcome`
    None: not connected yet; the operator's precheck (missing_for_edit) refuses it then."""
    return picture_job(JobMode.EDIT, pixels, s, welcome, tag)


def picture_job(
    mode: JobMode, pixels: np.ndarray, s: GenerationSettings, welcome, tag: str = "", **fields
) -> Job:
    """An edit or layers Job for a texture: the picture flattened and sized for the
    model; refused before sending on a model that does not run `mode`."""
    if welcome is not None:
        check_mode(mode.value, s.model, welcome)
    h, w = pixels.shape[:2]
    width, height = edit_size(w, h, s.info.family)
    job = panel_job(
        s,
        s.info.family,
        s.info.supports,
        mode=mode,
        init_image=resized(flatten(pixels), width, height),
        width=width,
        height=height,
        preview_every=int(s.preview_every),
        tag=tag,
        **fields,
    ).validate()
    return check_job(job, s.info)


def missing_for_edit(welcome, model: str = "") -> list[str]:
    """Plain sentences about why the backend cannot edit with the panel's `model`."""
    if welcome is None:
        return []
    why = edit_refusal(model, welcome)
    return [f"Edit Texture {why}; pick one in Model."] if why else []
