"""PBR maps from an image: the settings of a `materials` job (JobMode.MATERIALS).

The backend predicts each map from the job's init image with the artist's Marigold models
(diffusers' MarigoldIntrinsicsPipeline and MarigoldNormalsPipeline) and returns one image
per map, named in `GeneratedImage.map`. Marigold's own defaults stand where a field is
None: the model's `default_denoising_steps` and `default_processing_resolution` (4 steps
and 768 px for prs-eth's v1-1 folders).

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DreamwireError, ErrorCode
from .job_fields import FieldCheck

# The maps a materials job can ask for, in the order results come back. "albedo" is the
# base colour with the lighting taken out (sRGB); "roughness" and "metallic" are linear
# values 0..1 (Non-Color data in Blender); "normal" is a camera-space normal map, xyz in
# -1..1 stored as (n + 1) / 2 (x right, y up, z towards the camera).
MATERIAL_MAPS = ("albedo", "roughness", "metallic", "normal")
MAX_ENSEMBLE = 32  # Marigold's README suggests 10 for the best quality
MAX_MATERIAL_STEPS = 100
MAX_PROCESSING_RESOLUTION = 4096


def _default_maps() -> list[str]:
    return ["albedo", "roughness", "metallic"]


@dataclass
class Materials:
    maps: list[str] = field(default_factory=_default_maps)  # of MATERIAL_MAPS, no repeats
    # Marigold folders by library name; "": the first installed one that makes the map
    # (welcome.materials lists them per map).
    intrinsics_model: str = ""  # albedo, roughness, metallic (an IID model)
    normals_model: str = ""  # normal
    steps: int | None = None  # denoising steps; None: the model's default
    ensemble: int = 1  # predictions averaged per map (Marigold's ensemble_size, default 1)
    # The longer side the model sees, a multiple of 8; 0: the image's own size; None: the
    # model's default. Results always come back at the init image's size.
    resolution: int | None = None


def check_materials(m: object, job_id: str) -> None:
    """Every field's type and range, then the map names; DreamwireError naming the field."""
    f = FieldCheck(job_id)
    f.kind("materials", m, Materials)
    fm = f.nested("materials.")
    fm.listed("maps", m.maps)
    for name in ("intrinsics_model", "normals_model"):
        fm.text(name, getattr(m, name))
    if m.steps is not None:
        fm.whole("steps", m.steps, 1, MAX_MATERIAL_STEPS)
    fm.whole("ensemble", m.ensemble, 1, MAX_ENSEMBLE)
    if m.resolution is not None:
        fm.whole("resolution", m.resolution, 0, MAX_PROCESSING_RESOLUTION)
        if m.resolution % 8:
            raise fm.fail("resolution", "a multiple of 8", m.resolution, ErrorCode.INVALID_SIZE)
    if not m.maps:
        raise DreamwireError(ErrorCode.INVALID_JOB, "materials.maps names no map", job_id)
    for i, name in enumerate(m.maps):
        if name not in MATERIAL_MAPS:
            raise fm.fail(
                f"maps[{i}]", f"one of {', '.join(MATERIAL_MAPS)}", name, ErrorCode.INVALID_JOB
            )
    if len(set(m.maps)) != len(m.maps):
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"materials.maps names a map twice: {m.maps}", job_id
        )
