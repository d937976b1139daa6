"""PBR maps baked beside the colour: each generated view's Marigold maps, blended into the
mesh's UV textures with the weights its colour had.

After a view's picture is baked, the picture goes to the backend as a `materials` job
(shared/materials.py); its maps are pictures of the same view at the same size, so each map
is sampled where the colour was sampled (the view's pixel of every texel) and accumulated
with the colour's weights: where the colour of two views crossfades, so do their maps.

Normals: Marigold predicts them in the camera's frame (x right, y up, z towards the viewer,
which is Blender's camera-local frame). They are turned into the target object's frame
(camera -> world -> object, normals by the transpose of the object's matrix) and baked as an
object-space normal map (Blender's Normal Map node, space Object). A tangent-space map would
need per-texel tangents from the UV layout, which this rasteriser does not carry; an object-
space map is exact for the object as it is, and follows it when it moves or rotates (not
when it deforms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.materials import Materials

from .multiview import TextureAccumulator
from .projection import ViewSample, sample_bilinear

SURFACE_MAPS = ("albedo", "roughness", "metallic")
NORMAL = "normal"
# Maps Blender must read as data, not colour.
NON_COLOR = ("roughness", "metallic", NORMAL)
# What a texel no view saw holds: mid-grey albedo, Principled BSDF's default roughness 0.5,
# not metallic, and a flat normal left to the geometry (an unset object-space normal has no
# neutral value, so the Normal Map node's strength is zeroed there by alpha instead).
FILL = {
    "albedo": (128.0, 128.0, 128.0),
    "roughness": (128.0, 128.0, 128.0),
    "metallic": (0.0, 0.0, 0.0),
    NORMAL: (128.0, 128.0, 255.0),
}


def wanted_maps(normal: bool) -> list[str]:
    return [*SURFACE_MAPS, NORMAL] if normal else list(SURFACE_MAPS)


def missing_maps(maps: list[str], welcome) -> str | None:
    """Why the backend cannot make `maps` (its welcome lists no Marigold model for some),
    or None; a backend not yet heard from is asked anyway (the job then says why)."""
    if welcome is None:
        return None
    lacking = [m for m in maps if m not in getattr(welcome, "materials", {})]
    if not lacking:
        return None
    return (
        f"PBR maps: the backend has no Marigold model for {', '.join(lacking)}; put prs-eth's "
        "marigold-iid-appearance-v1-1 (and marigold-normals-v1-1) folders in its models/Marigold"
    )


def materials_job(view: np.ndarray, maps: list[str], seed: int, tag: str) -> Job:
    """The job asking for `view`'s maps (its RGB; the seed: the view's, to remake them)."""
    rgb = np.ascontiguousarray(np.asarray(view, np.uint8)[..., :3])
    return Job(
        mode=JobMode.MATERIALS,
        init_image=rgb,
        seed=int(seed),
        materials=Materials(maps=list(maps)),
        priority="interactive",
        tag=tag,
    )


def seamless_padding(image: np.ndarray, axes: str) -> tuple[np.ndarray, tuple[int, int]]:
    """A tiling texture widened by a quarter of its size on each side along its seamless
    `axes` ("x", "y", "both", "none"), wrapping around, and the (top, left) offset of the
    texture in it: Marigold then sees across the texture's edges as it tiles, so maps cut
    back out of the middle tile too (a map of the bare texture has its own edges)."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    py = (h // 4) // 8 * 8 if axes in ("y", "both") else 0
    px = (w // 4) // 8 * 8 if axes in ("x", "both") else 0
    pad = ((py, py), (px, px)) + ((0, 0),) * (img.ndim - 2)
    return np.pad(img, pad, mode="wrap"), (py, px)


def crop_maps(
    maps: dict[str, np.ndarray], offset: tuple[int, int], size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The texture's own part (`size` = (width, height) at `offset`) of each padded map."""
    (top, left), (w, h) = offset, size
    return {m: a[top : top + h, left : left + w] for m, a in maps.items()}


def maps_of(result) -> dict[str, np.ndarray]:
    """{map name: H x W x 3 uint8} from a materials job's result."""
    return {g.map: np.asarray(g.image)[..., :3] for g in result.images if g.map}


def resample(sample: ViewSample, image: np.ndarray) -> ViewSample:
    """`sample` with its colours read from `image` (the same view) at the same pixels."""
    img = np.asarray(image, np.float32)
    colors = np.zeros((sample.weights.shape[0], img.shape[2]), np.float32)
    if sample.visible.any():
        colors[sample.visible] = sample_bilinear(img, sample.pixels[sample.visible])
    return ViewSample(colors, sample.weights, sample.facing, sample.visible, sample.pixels)


def normals_to_object(
    normal_map: np.ndarray, cam_to_world: np.ndarray, object_matrix: np.ndarray
) -> np.ndarray:
    """A camera-space normal map ((n + 1) / 2, uint8) as the object's, in the same encoding."""
    n = np.asarray(normal_map, np.float64)[..., :3] / 255.0 * 2.0 - 1.0
    world = n @ np.asarray(cam_to_world, np.float64)[:3, :3].T
    # Normals go from world to object space by the transpose of the object's linear part
    # (the inverse transpose of world-from-object, inverted).
    obj = world @ np.asarray(object_matrix, np.float64)[:3, :3]
    obj /= np.maximum(np.linalg.norm(obj, axis=-1, keepdims=True), 1e-12)
    return np.clip(np.rint((obj + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


@dataclass
class MapBaker:
    """One accumulator per (target, map), over the target's covered texels."""

    masks: dict[str, np.ndarray]  # target -> TexelSurface.mask
    maps: list[str]
    accs: dict[tuple[str, str], TextureAccumulator] = field(default_factory=dict)

    def __post_init__(self):
        for target, mask in self.masks.items():
            for m in self.maps:
                self.accs[(target, m)] = TextureAccumulator(mask)

    def add(self, target: str, sample: ViewSample, maps: dict[str, np.ndarray]) -> None:
        """One view's maps for `target`, with `sample` (its colour's) weights and pixels."""
        for m in self.maps:
            if m in maps:
                self.accs[(target, m)].add(resample(sample, maps[m]))

    def textures(self, target: str) -> dict[str, np.ndarray]:
        """{map: H x W x 4 uint8} for `target` (alpha 255 where a view gave it a value)."""
        out = {}
        for m in self.maps:
            acc = self.accs[(target, m)]
            if acc.views:
                out[m] = acc.texture(fill=FILL[m])
        return out
