"""Choosing camera viewpoints by how much of a surface they see well, in plain numpy.

Candidates sit on a sphere around the targets' bounding sphere (Fibonacci points, so they
are spread evenly), or on its upper half for objects standing on the ground, each far
enough away that the bounding sphere fills the camera's narrower field of view. A
candidate weighs a fixed set of surface samples with the very weight a bake would give
them (projection.sample_view: visibility against the whole scene, targets and occluders,
rasterised with the project's own rasteriser; facing ratio ** power; grazing cut-off;
frame border). Views are chosen greedily: each next one is the candidate that adds the
most sample area beyond what the chosen views already see, where a sample counts as well
as the best view that sees it (a max, not a sum: two mediocre views of a face do not add
up to one head-on view, which is what a texture needs). Choosing stops early when the
best candidate would add less than `min_gain` of the total surface area. The facing
weight alone bounds what a candidate can add, so only the few candidates that could win
are rasterised (choose_greedy), and geometry finer than a coverage pixel is merged before
(simplify_for_depth): the rasteriser's cost is per triangle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .projection import BakeSettings, Camera, intrinsics, sample_view, smoothstep
from .rasterize import rasterize

# Triangles per rasteriser call when candidate views share one image as tiles.
_BATCH_TRIANGLES = 24_000


@dataclass(frozen=True)
class PlacementSettings:
    count: int = 6  # the most views to choose
    hemisphere: bool = False  # only viewpoints at or above the targets' centre height
    candidates: int = 160  # viewpoints tried (over the whole sphere or the half)
    fov_deg: float = 39.6  # the camera's narrower field of view (50 mm lens, 36 mm sensor)
    margin: float = 1.1  # distance factor beyond just framing the bounding sphere
    raster_px: int = 32  # size of the coverage rasterisation per candidate
    samples: int = 2000  # surface points the coverage is measured on (about)
    min_gain: float = 0.01  # stop when a view adds less than this share of the area
    # Geometry finer than this share of a coverage pixel (at the targets) is merged for
    # the z-buffers: a dense mesh costs per triangle, and the raster cannot resolve it.
    depth_cell_px: float = 1.0
    seed: int = 0  # for the sample points inside large triangles
    bake: BakeSettings = field(default_factory=BakeSettings)


@dataclass(frozen=True)
class CameraPose:
    position: np.ndarray  # (3,) world position
    target: np.ndarray  # (3,) the point looked at
    up: np.ndarray  # (3,) world direction that is up in the image
    gain: float  # share of the surface area (facing-weighted) this view added when chosen

    def cam_to_world(self) -> np.ndarray:
        """4 x 4 camera matrix in Blender's convention (looks down -Z, +Y up)."""
        return look_at(self.position, self.target, self.up)


@dataclass(frozen=True)
class Placement:
    poses: list[CameraPose]  # in the order chosen
    coverage: float  # share of the surface area (facing-weighted) the poses cover
    candidates: int  # how many viewpoints were considered
    rasterised: int  # ... and how many of them had to be rasterised to choose


@dataclass(frozen=True)
class GreedyChoice:
    chosen: list[tuple[int, float]]  # (candidate index, gain as a share of the area)
    best: np.ndarray  # N: the best chosen weight per sample
    evaluated: int  # candidates whose real weights were asked for


def fibonacci_directions(n: int, hemisphere: bool = False) -> np.ndarray:
    """`n` unit vectors spread evenly over the sphere (z from 1 to -1), or over the
    upper half (z from 1 to 0) when `hemisphere`."""
    n = max(1, int(n))
    i = np.arange(n) + 0.5
    z = 1.0 - i / n if hemisphere else 1.0 - 2.0 * i / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, 1.0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))  # the golden angle
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world matrix for a camera at `position` looking at `target`, with `up`
    as close to the image's up as the view direction allows."""
    p = np.asarray(position, np.float64)
    back = p - np.asarray(target, np.float64)
    back /= max(float(np.linalg.norm(back)), 1e-12)
    right = np.cross(np.asarray(up, np.float64), back)
    if np.linalg.norm(right) < 1e-9:  # up along the view: any perpendicular will do
        right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, p
    return m


def up_for(direction: np.ndarray) -> np.ndarray:
    """World +Z, except for views from straight above or below, which take +Y as up (the
    front of the object at the bottom of a top view, as Blender's own Top view)."""
    d = np.asarray(direction, np.float64)
    return np.array([0.0, 1.0, 0.0]) if abs(d[2]) > 0.999 else np.array([0.0, 0.0, 1.0])


def narrow_fov_deg(
    width: int, height: int, lens: float, sensor_width: float, sensor_height: float, fit: str
) -> float:
    """The narrower of a Blender camera's two fields of view for a frame of that size."""
    fx, fy, _, _ = intrinsics(width, height, lens, sensor_width, sensor_height, fit)
    return 2.0 * math.degrees(min(math.atan(width / 2.0 / fx), math.atan(height / 2.0 / fy)))


def framing_distance(radius: float, fov_deg: float, margin: float = 1.1) -> float:
    """Distance from the centre at which a sphere of `radius` just fits the field of view
    (times `margin`, so that the frame border's weight ramp falls outside the object)."""
    half = math.radians(min(max(fov_deg, 1.0), 179.0)) / 2.0
    return margin * radius / math.sin(half)


def bounding_sphere(tris: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (of the bounding box) and radius enclosing every corner of `tris`."""
    pts = np.asarray(tris, np.float64).reshape(-1, 3)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    return centre, max(float(np.linalg.norm(pts - centre, axis=1).max()), 1e-6)


def surface_samples(
    tris: np.ndarray, normals: np.ndarray | None, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About `count` points on the triangles, with their normals and the area each stands
    for (the areas sum to the surface area).

    With fewer triangles than `count`, each keeps its centroid and large ones get more
    points in proportion to their area, so that a triangle partly hidden counts partly.
    With more (a dense mesh), `count` triangles are drawn in proportion to their area,
    each standing for an equal share: the cost stays that of `count` points."""
    t = np.asarray(tris, np.float64)
    cross = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    face_n = cross / np.maximum(2.0 * area[:, None], 1e-20)
    total = float(area.sum())
    rng = np.random.default_rng(seed)
    if total > 0 and count < len(t):
        tri_of = np.sort(rng.choice(len(t), size=count, p=area / total))
        first = np.zeros(len(tri_of), bool)
        weights = np.full(len(tri_of), total / count)
    else:
        per = np.ones(len(t), np.int64)
        if total > 0:
            per = np.maximum(1, np.floor(area / total * count).astype(np.int64))
        tri_of = np.repeat(np.arange(len(t)), per)
        # Each triangle's first point is its centroid; the others fall inside it.
        first = np.zeros(len(tri_of), bool)
        first[np.cumsum(per) - per] = True
        weights = area[tri_of] / per[tri_of]
    u, v = rng.random(len(tri_of)), rng.random(len(tri_of))
    flip = u + v > 1.0
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    bary = np.stack([1.0 - u - v, u, v], axis=1)
    bary[first] = 1.0 / 3.0
    points = np.einsum("nc,nck->nk", bary, t[tri_of])
    if normals is None:
        nrm = face_n[tri_of]
    else:
        nrm = np.einsum("nc,nck->nk", bary, np.asarray(normals, np.float64)[tri_of])
    return points, nrm, weights


@dataclass
class _PosedCamera(Camera):
    """A Camera that keeps its camera-to-world matrix: sample_view asks for the position
    of every view, and a general 4 x 4 inversion per candidate is wasted time."""

    pose: np.ndarray | None = None

    @property
    def cam_to_world(self) -> np.ndarray:
        return self.pose


def coverage_camera(pose_matrix: np.ndarray, fov_deg: float, size: int) -> Camera:
    """A square perspective Camera with the given field of view, for coverage tests."""
    f = (size / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    rot, pos = pose_matrix[:3, :3], pose_matrix[:3, 3]
    world_to_cam = np.eye(4)  # a rigid motion's inverse is its transpose
    world_to_cam[:3, :3], world_to_cam[:3, 3] = rot.T, -rot.T @ pos
    c = size / 2.0
    return _PosedCamera(
        world_to_cam, size, size, f, f, c, c, clip_start=1e-3, clip_end=1e6, pose=pose_matrix
    )


def clip_near(cam_tris: np.ndarray, near: float) -> np.ndarray:
    """Camera-space triangles (T x 3 x 3, looking down -Z) cut at the near plane: a
    triangle with one corner behind becomes two, with two behind one, with three none.

    Placement must clip rather than drop (as a bake's z-buffer does): a ground plane of
    two big triangles crosses the near plane of most cameras, and left out it would hide
    nothing from the cameras below it."""
    t = np.asarray(cam_tris, np.float64)
    depth = -t[..., 2]
    front = depth >= near
    n_front = front.sum(axis=1)
    whole = t[n_front == 3]

    def roll(tris, first):  # corners reordered to start at `first`, winding kept
        idx = (first[:, None] + np.arange(3)[None, :]) % 3
        return np.take_along_axis(tris, idx[:, :, None], axis=1)

    def cut(a, b):  # where the edge from a to b meets the near plane
        da, db = -a[:, 2:3], -b[:, 2:3]
        return a + (b - a) * ((da - near) / np.where(da != db, da - db, 1.0))

    one = n_front == 1  # keep the corner in front and the two cut points
    r = roll(t[one], np.argmax(front[one], axis=1))
    tri_one = np.stack([r[:, 0], cut(r[:, 0], r[:, 1]), cut(r[:, 0], r[:, 2])], axis=1)
    two = n_front == 2  # a quad remains: two triangles
    r = roll(t[two], np.argmin(front[two], axis=1))
    p, q = cut(r[:, 0], r[:, 1]), cut(r[:, 0], r[:, 2])
    quad = [np.stack([p, r[:, 1], r[:, 2]], axis=1), np.stack([p, r[:, 2], q], axis=1)]
    return np.concatenate([whole, tri_one, *quad])


def simplify_for_depth(tris: np.ndarray, cell: float) -> np.ndarray:
    """Triangles with their corners merged per grid cell of size `cell` (vertex
    clustering: each cell's corners move to their mean), the collapsed and repeated ones
    left out. Merged corners stay near the surface (a cell's mean of points on it), so a
    z-buffer at a resolution coarser than the cells hardly changes."""
    t = np.asarray(tris, np.float64).reshape(-1, 3, 3)
    if len(t) == 0 or cell <= 0:
        return t
    pts = t.reshape(-1, 3)
    key = np.floor((pts - pts.min(axis=0)) / cell).astype(np.int64)
    span = key.max(axis=0) + 1
    flat = (key[:, 0] * span[1] + key[:, 1]) * span[2] + key[:, 2]
    cells, inv = np.unique(flat, return_inverse=True)
    counts = np.bincount(inv, minlength=len(cells))[:, None]
    rep = np.stack([np.bincount(inv, pts[:, k], len(cells)) for k in range(3)], 1) / counts
    c = inv.reshape(-1, 3)
    c = c[(c[:, 0] != c[:, 1]) & (c[:, 1] != c[:, 2]) & (c[:, 0] != c[:, 2])]
    # One of each triangle (corner order aside): a merged patch repeats its triangles.
    srt = np.sort(c, axis=1)
    n = len(cells)
    _, first = np.unique((srt[:, 0] * n + srt[:, 1]) * n + srt[:, 2], return_index=True)
    return rep[c[np.sort(first)]]


def depth_buffers(cams: list[Camera], tris: np.ndarray) -> list[np.ndarray]:
    """Each camera's z-buffer of world triangles (as projection.view_depth_buffer, but cut
    at the near plane), with several same-sized cameras rasterised in one call as tiles of
    a tall image (half the time of one call per camera at coverage resolutions)."""
    if not cams:
        return []
    w, h = cams[0].width, cams[0].height
    t = np.asarray(tris, np.float64).reshape(-1, 3, 3)
    per_call = max(1, _BATCH_TRIANGLES // max(1, len(t)))
    out: list[np.ndarray] = []
    for start in range(0, len(cams), per_call):
        batch = cams[start : start + per_call]
        xys, depths = [], []
        for cam in batch:
            rot, pos = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
            clipped = clip_near(t @ rot.T + pos, cam.clip_start)
            # Back to world space so that the camera's own projection maps them.
            xy, depth = cam.project((clipped - pos) @ rot)
            xys.append(xy.reshape(-1, 3, 2) + [0.0, len(xys) * h])
            depths.append(depth.reshape(-1, 3))
        tile = np.repeat(np.arange(len(batch)), [len(x) for x in xys])
        bounds = np.stack([0 * tile, tile * h, 0 * tile + w, (tile + 1) * h], axis=1)
        r = rasterize(
            np.concatenate(xys),
            w,
            h * len(batch),
            depth=np.concatenate(depths),
            perspective=True,
            bounds=bounds,
        )
        out.extend(r.depth[k * h : (k + 1) * h] for k in range(len(batch)))
    return out


def facing_bounds(
    cams: list[Camera], points: np.ndarray, normals: np.ndarray, bake: BakeSettings
) -> np.ndarray:
    """C x N upper bounds of the weights sample_view gives: its facing-ratio weight alone,
    before the frame border and the z-buffer can only lower it. Cheap for all candidates
    at once, and 0 wherever the real weight is 0 for the angle alone."""
    unit_n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    pos = np.stack([cam.position for cam in cams])
    to_cam = pos[:, None, :] - points[None, :, :]
    facing = np.einsum("nk,cnk->cn", unit_n, to_cam) / np.maximum(
        np.linalg.norm(to_cam, axis=2), 1e-12
    )
    cos_graze = math.cos(math.radians(bake.grazing_deg))
    cos_full = math.cos(math.radians(bake.full_deg))
    w = smoothstep(cos_graze, cos_full, facing) * np.clip(facing, 0, 1) ** bake.facing_power
    return w + 1e-6  # sample_view rounds its weights to float32


def candidate_weights(
    cams: list[Camera],
    points: np.ndarray,
    normals: np.ndarray,
    scene_tris: np.ndarray,
    bake: BakeSettings,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """len(cams) x N: the bake weight each camera gives each surface sample. Samples
    whose `bounds` row is 0 (grazing, or facing away) are not looked up."""
    out = np.zeros((len(cams), len(points)), np.float32)
    blank = np.zeros((1, 1, 1), np.float32)  # only the weights are wanted, not colours
    for i, (cam, zbuf) in enumerate(zip(cams, depth_buffers(cams, scene_tris), strict=True)):
        keep = np.arange(len(points)) if bounds is None else np.nonzero(bounds[i] > 1e-5)[0]
        if keep.size:
            sv = sample_view(cam, blank, points[keep], normals[keep], zbuf, bake)
            out[i, keep] = sv.weights
    return out


def choose_greedy(
    bounds: np.ndarray,
    evaluate: Callable[[list[int]], np.ndarray],
    areas: np.ndarray,
    count: int,
    min_gain: float,
    chunk: int = 8,
) -> GreedyChoice:
    """Candidates chosen in turn to maximise the area-weighted sum over samples of the
    best chosen weight.

    `evaluate(indices)` gives candidates' real weights (rows, the costly part);
    `bounds` (C x N) must be at least as large. Lazy greedy: a candidate's gain under its
    bounds caps its real gain, so candidates are evaluated, `chunk` at a time, in order of
    that cap only until the best real gain found beats every cap left. The choice is the
    plain greedy one; most candidates (those facing away from what is still uncovered)
    are never rasterised."""
    total = float(areas.sum())
    best = np.zeros(bounds.shape[1], np.float64)
    if total <= 0 or bounds.size == 0:
        return GreedyChoice([], best, 0)
    real: dict[int, np.ndarray] = {}
    chosen: list[tuple[int, float]] = []
    for _ in range(max(0, count)):
        caps = (np.maximum(bounds - best, 0.0) @ areas) / total
        order = np.argsort(-caps, kind="stable")
        while True:
            known = list(real)
            gains = [float(np.maximum(real[i] - best, 0.0) @ areas) / total for i in known]
            top = int(np.argmax(gains)) if known else -1
            pending = [int(i) for i in order if int(i) not in real]
            if known and (not pending or gains[top] >= caps[pending[0]]):
                break
            for i, w in zip(pending[:chunk], evaluate(pending[:chunk]), strict=True):
                real[i] = w.astype(np.float64)
        if gains[top] < min_gain:
            break
        chosen.append((known[top], gains[top]))
        best = np.maximum(best, real[known[top]])
    return GreedyChoice(chosen, best, len(real))


def place_cameras(
    targets: np.ndarray,
    occluders: np.ndarray | None = None,
    target_normals: np.ndarray | None = None,
    settings: PlacementSettings | None = None,
) -> Placement:
    """Choose up to `settings.count` viewpoints that together see the most of the target
    triangles (T x 3 x 3, world space) well; `occluders` (T' x 3 x 3) may hide them.
    `target_normals` (T x 3 x 3, per corner) are the shading normals; without them the
    faces' own normals (from the winding) are used."""
    s = settings or PlacementSettings()
    tris = np.asarray(targets, np.float64).reshape(-1, 3, 3)
    if len(tris) == 0:
        return Placement([], 0.0, 0, 0)
    centre, radius = bounding_sphere(tris)
    dist = framing_distance(radius, s.fov_deg, s.margin)
    dirs = fibonacci_directions(s.candidates, s.hemisphere)
    cams = [
        coverage_camera(look_at(centre + dist * d, centre, up_for(d)), s.fov_deg, s.raster_px)
        for d in dirs
    ]
    occ = np.zeros((0, 3, 3)) if occluders is None else np.asarray(occluders, np.float64)
    pixel = 2.0 * dist * math.tan(math.radians(s.fov_deg) / 2.0) / s.raster_px  # at the centre
    scene = simplify_for_depth(
        np.concatenate([tris, occ.reshape(-1, 3, 3)]), s.depth_cell_px * pixel
    )
    points, normals, areas = surface_samples(tris, target_normals, s.samples, s.seed)
    # The frame border ramps over a share of the image, as in a bake at full size; its
    # floor in pixels would cover far more of a coverage-sized raster.
    bake = replace(s.bake, border_px=0.0)
    bounds = facing_bounds(cams, points, normals, bake)

    def evaluate(indices: list[int]) -> np.ndarray:
        picked = [cams[i] for i in indices]
        return candidate_weights(picked, points, normals, scene, bake, bounds[indices])

    g = choose_greedy(bounds, evaluate, areas, s.count, s.min_gain)
    poses = [
        CameraPose(centre + dist * dirs[i], centre.copy(), up_for(dirs[i]), gain)
        for i, gain in g.chosen
    ]
    return Placement(poses, float(g.best @ areas / areas.sum()), len(dirs), g.evaluated)
