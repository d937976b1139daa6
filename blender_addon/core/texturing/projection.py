"""Camera math and single-view projection baking, in plain numpy.

A camera follows Blender's convention: it looks down its local -Z axis with +Y up.
Pixel coordinates follow images: x to the right, y downwards, the pixel (0, 0) spanning
[0, 1) x [0, 1). Baking maps every texel of a mesh's UV texture to the surface point it
stands for, projects that point into the camera image and reads the colour there. A texel
only takes a colour where the camera really sees it: inside the frame, in front of the
camera, facing it, and not hidden behind other geometry (tested against a z-buffer).
Its weight falls smoothly to zero toward grazing angles and the image border (and, when
asked, toward depth edges: depth_edges.py), so that several views blend without seams
(see multiview.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .depth_edges import edge_distance
from .rasterize import Raster, rasterize


@dataclass
class Camera:
    world_to_cam: np.ndarray  # 4 x 4, the inverse of the camera object's world matrix
    width: int
    height: int
    fx: float  # focal length in pixels (orthographic: pixels per world unit)
    fy: float
    cx: float  # principal point in pixels
    cy: float
    ortho: bool = False
    clip_start: float = 0.01
    clip_end: float = 1000.0

    @property
    def cam_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_cam)

    @property
    def position(self) -> np.ndarray:
        return self.cam_to_world[:3, 3]

    @property
    def forward(self) -> np.ndarray:
        """World-space viewing direction (the camera's -Z)."""
        f = -self.cam_to_world[:3, 2]
        return f / np.linalg.norm(f)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, np.float64)
        return p @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N x 2) and view depth (N, positive in front) of world points."""
        c = self.to_camera(points)
        depth = -c[..., 2]
        if self.ortho:
            x, y = c[..., 0], c[..., 1]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                safe = np.where(depth > 1e-12, depth, np.nan)
                x, y = c[..., 0] / safe, c[..., 1] / safe
        px = self.cx + self.fx * x
        py = self.cy - self.fy * y
        return np.stack([px, py], axis=-1), depth

    def directions_to_camera(self, points: np.ndarray) -> np.ndarray:
        """Unit vectors from each world point toward the camera (the eye ray, reversed)."""
        p = np.asarray(points, np.float64)
        if self.ortho:
            return np.broadcast_to(-self.forward, p.shape).copy()
        d = self.position - p
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        return d / np.maximum(n, 1e-12)


def intrinsics(
    width: int,
    height: int,
    lens: float,
    sensor_width: float,
    sensor_height: float,
    sensor_fit: str = "AUTO",
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    ortho_scale: float | None = None,
    pixel_aspect: float = 1.0,
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) the way Blender maps its camera settings to the render frame.

    The sensor (or orthographic scale) spans the width for fit HORIZONTAL, the height for
    VERTICAL, and the larger side of the frame (after pixel aspect) for AUTO; lens shift
    is measured in units of that same span.
    """
    aspect_w = width * pixel_aspect
    aspect_h = float(height)
    fit = sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_w >= aspect_h else "VERTICAL"
        sensor = sensor_width
    else:
        sensor = sensor_width if fit == "HORIZONTAL" else sensor_height
    span_px = width if fit == "HORIZONTAL" else height
    # Pixel aspect stretches x relative to y; keep y as the reference.
    if fit == "HORIZONTAL":
        fx = (span_px / ortho_scale) if ortho_scale else span_px * lens / sensor
        fy = fx * pixel_aspect
        shift_span = width
    else:
        fy = (span_px / ortho_scale) if ortho_scale else span_px * lens / sensor
        fx = fy / pixel_aspect
        shift_span = height
    # Shifting the view plane right/up moves what it sees left/down in the image.
    cx = width / 2.0 - shift_x * shift_span
    cy = height / 2.0 + shift_y * shift_span
    return fx, fy, cx, cy


def camera_from_model(model) -> Camera:
    """A Camera from core.camera.CameraModel (the exact Blender view-plane model)."""
    pixsize, ycor, dx, dy, _ = model._plane()
    return Camera(
        world_to_cam=model.world_to_camera,
        width=int(model.width),
        height=int(model.height),
        fx=1.0 / pixsize,
        fy=1.0 / (pixsize * ycor),
        cx=model.width / 2.0 - dx,
        cy=model.height / 2.0 + dy / ycor,
        ortho=bool(model.ortho),
        clip_start=float(model.clip_start),
        clip_end=float(model.clip_end),
    )


def view_depth_buffer(cam: Camera, triangles: np.ndarray) -> Raster:
    """Rasterise world-space triangles (T x 3 x 3) as the camera sees them."""
    tris = np.asarray(triangles, np.float64)
    if tris.size == 0:
        return rasterize(np.zeros((0, 3, 2)), cam.width, cam.height)
    xy, depth = cam.project(tris.reshape(-1, 3))
    xy = xy.reshape(-1, 3, 2)
    depth = depth.reshape(-1, 3)
    # Triangles that cross the near plane would project wrongly; dropping them only
    # affects geometry touching the camera, which cannot be baked well anyway.
    near_ok = (depth >= cam.clip_start).all(axis=1) & (depth <= cam.clip_end).all(axis=1)
    xy = np.where(near_ok[:, None, None], xy, np.nan)
    return rasterize(xy, cam.width, cam.height, depth=depth, perspective=not cam.ortho)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / max(e1 - e0, 1e-9), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class BakeSettings:
    grazing_deg: float = 80.0  # surfaces seen flatter than this (from the normal) get nothing
    full_deg: float = 50.0  # ... and full weight from this angle inward
    border_px: float = 4.0  # weight ramps up over at least this many pixels inside the frame
    border_frac: float = 0.08  # ... or this fraction of the smaller image side, if more
    depth_tolerance: float = 0.01  # relative: a texel this much behind the z-buffer is hidden
    facing_power: float = 2.0  # weight = facing ratio ** power (favours head-on views)
    # Depth-edge feathering (depth_edges.py): the weight ramps up over this many pixels
    # away from depth discontinuities in the view's z-buffer; 0 turns it off.
    edge_feather_px: float = 0.0
    edge_depth_jump: float = 0.03  # relative depth step that counts as a discontinuity
    # The weight right at an edge: not zero, so a texel that no other view sees still
    # takes this view's colour, but any view that sees it away from an edge outweighs it.
    edge_floor: float = 1e-3


@dataclass
class ViewSample:
    """What one camera contributes to a set of surface points."""

    colors: np.ndarray  # N x C float32, 0..255
    weights: np.ndarray  # N float32, 0..1; 0 where the view does not see the point
    facing: np.ndarray  # N float32, cosine between normal and the direction to the camera
    visible: np.ndarray  # N bool: in frame, in front, not occluded, not back-facing
    pixels: np.ndarray  # N x 2 float pixel coordinates


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear lookup at pixel coordinates (centres at +0.5), clamped at the border."""
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    h, w = img.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def sample_view(
    cam: Camera,
    image: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    zbuffer: np.ndarray | None,
    settings: BakeSettings | None = None,
) -> ViewSample:
    """Colours and blend weights that `image`, seen from `cam`, gives surface points."""
    s = settings or BakeSettings()
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    nrm = np.asarray(normals, np.float64).reshape(-1, 3)
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    xy, depth = cam.project(pts)
    finite = np.isfinite(xy).all(axis=1)
    xy_safe = np.where(finite[:, None], xy, 0.0)
    in_front = finite & (depth > cam.clip_start) & (depth < cam.clip_end)
    in_frame = (
        in_front
        & (xy_safe[:, 0] >= 0)
        & (xy_safe[:, 0] < cam.width)
        & (xy_safe[:, 1] >= 0)
        & (xy_safe[:, 1] < cam.height)
    )
    facing = np.einsum("ij,ij->i", nrm, cam.directions_to_camera(pts))
    visible = in_frame & (facing > 0)
    if zbuffer is not None and visible.any():
        ix = np.clip(xy_safe[:, 0].astype(np.int64), 0, cam.width - 1)
        iy = np.clip(xy_safe[:, 1].astype(np.int64), 0, cam.height - 1)
        # The nearest surface over the 3x3 neighbourhood: texels on a silhouette edge are
        # judged by the farthest neighbour would let occluders bleed; the nearest keeps
        # the test strict, the tolerance absorbs the rasteriser's depth quantisation.
        zb = np.full(pts.shape[0], np.inf)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                zz = zbuffer[
                    np.clip(iy + dy, 0, cam.height - 1), np.clip(ix + dx, 0, cam.width - 1)
                ]
                zb = np.minimum(zb, zz)
        zc = zbuffer[iy, ix]
        # Accept the texel when it is not behind the surface drawn at its own pixel; the
        # neighbourhood minimum only matters where the centre pixel is empty.
        ref = np.where(np.isfinite(zc), zc, zb)
        tol = s.depth_tolerance * np.maximum(depth, 1e-6) + _slope_allowance(cam, depth, facing)
        visible &= depth <= ref + tol
    cos_graze = math.cos(math.radians(s.grazing_deg))
    cos_full = math.cos(math.radians(s.full_deg))
    w_angle = smoothstep(cos_graze, cos_full, facing) * np.clip(facing, 0, 1) ** s.facing_power
    border = max(s.border_px, s.border_frac * min(cam.width, cam.height))
    if border > 0:
        edge = np.minimum.reduce(
            [xy_safe[:, 0], cam.width - xy_safe[:, 0], xy_safe[:, 1], cam.height - xy_safe[:, 1]]
        )
        w_border = smoothstep(0.0, border, edge)
    else:
        w_border = np.ones(pts.shape[0])
    w_edge = _edge_weight(zbuffer, xy_safe, s)
    weights = np.where(visible, w_angle * w_border * w_edge, 0.0).astype(np.float32)
    colors = np.zeros((pts.shape[0], image.shape[2] if image.ndim == 3 else 1), np.float32)
    if visible.any():
        colors[visible] = sample_bilinear(image, xy_safe[visible])
    return ViewSample(colors, weights, facing.astype(np.float32), visible, xy)


def _edge_weight(zbuffer: np.ndarray | None, xy: np.ndarray, s: BakeSettings) -> np.ndarray | float:
    """Per point, 0..1: how far its pixel lies from a depth edge, as a smooth ramp over
    `edge_feather_px` (read bilinearly, like the border ramp, so it is smooth in texels)."""
    if s.edge_feather_px <= 0 or zbuffer is None:
        return 1.0
    dist = edge_distance(zbuffer, s.edge_feather_px, s.edge_depth_jump)
    d = sample_bilinear(dist, xy)[:, 0]
    return np.maximum(smoothstep(0.0, s.edge_feather_px, d), s.edge_floor)


def _slope_allowance(cam: Camera, depth: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Depth change across one pixel on a tilted surface: a texel and the z-buffer sample
    at its pixel centre may differ by this much without either being hidden."""
    pix = 1.0 / cam.fx if cam.ortho else np.maximum(depth, 1e-06) / cam.fx
    tan = np.sqrt(np.clip(1 - facing**2, 0, 1)) / np.maximum(facing, 0.05)
    return 1.5 * pix * tan


@dataclass
class TexelSurface:
    """The surface points that a texture's texels stand for (from a UV rasterisation)."""

    mask: np.ndarray  # H x W bool, texels covered by some UV triangle
    positions: np.ndarray  # N x 3 world positions of the covered texels (row-major order)
    normals: np.ndarray  # N x 3 world normals
    tri: np.ndarray | None = None  # H x W index of the UV triangle per texel, -1 outside


def texel_surface(
    uv_tris: np.ndarray, world_tris: np.ndarray, normal_tris: np.ndarray, size: tuple[int, int]
) -> TexelSurface:
    """Rasterise UV triangles (T x 3 x 2, 0..1, v up as in Blender) into a texture of
    `size` (width, height), interpolating world positions and normals per texel."""
    w, h = size
    uv = np.asarray(uv_tris, np.float64)
    xy = np.stack([uv[..., 0] * w, (1.0 - uv[..., 1]) * h], axis=-1)
    r = rasterize(xy, w, h)
    attrs = np.concatenate(
        [np.asarray(world_tris, np.float32), np.asarray(normal_tris, np.float32)], axis=2
    )
    vals = r.interpolate(attrs)
    m = r.mask
    return TexelSurface(
        m, vals[m][:, :3].astype(np.float64), vals[m][:, 3:].astype(np.float64), r.tri
    )


def uv_to_pixels(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Blender UVs (v up) to texture pixel coordinates (y down)."""
    w, h = size
    uv = np.asarray(uv, np.float64)
    return np.stack([uv[..., 0] * w, (1.0 - uv[..., 1]) * h], axis=-1)
