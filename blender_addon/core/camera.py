"""World -> camera -> NDC -> pixel projection, following Blender's camera model exactly.

This redoes Blender's view-plane computation (BKE_camera_params_compute_viewplane):
the sensor size used is sensor_width unless the fit is VERTICAL; the fit decides whether
the sensor spans the frame's width or its height (AUTO: the larger side after pixel
aspect); lens shift moves the view plane by shift x that same span; pixel aspect
stretches the y extent by aspect_y / aspect_x. Orthographic cameras replace
sensor/lens by ortho_scale and drop the perspective division.

Pixel coordinates follow images: x right, y down, pixel (i, j) spanning [i, i+1) x
[j, j+1). The camera looks down its local -Z with +Y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


@dataclass
class CameraModel:
    matrix_world: np.ndarray = field(default_factory=lambda: np.eye(4))  # camera object, 4x4
    width: int = 512
    height: int = 512
    ortho: bool = False
    lens: float = 50.0  # mm
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    sensor_fit: str = "AUTO"
    ortho_scale: float = 6.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    clip_start: float = 0.1
    clip_end: float = 1000.0

    def __post_init__(self) -> None:
        self.matrix_world = np.asarray(self.matrix_world, dtype=np.float64).reshape(4, 4)
        if self.sensor_fit not in SENSOR_FITS:
            raise ValueError(f"sensor_fit must be one of {SENSOR_FITS}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError("width and height must be positive")

    # --- Blender's view plane -------------------------------------------------------

    def _plane(self) -> tuple[float, float, float, float, float]:
        """(pixel size at unit distance, ycor, dx, dy, viewfac) in Blender's terms."""
        w, h = float(self.width), float(self.height)
        ax, ay = self.pixel_aspect_x, self.pixel_aspect_y
        ycor = ay / ax
        fit = self.sensor_fit
        if fit == "AUTO":
            fit = "HORIZONTAL" if ax * w >= ay * h else "VERTICAL"
        if self.ortho:
            size = self.ortho_scale
        else:
            sensor = self.sensor_height if self.sensor_fit == "VERTICAL" else self.sensor_width
            size = sensor / self.lens
        viewfac = w if fit == "HORIZONTAL" else ycor * h
        pixsize = size / viewfac
        return pixsize, ycor, self.shift_x * viewfac, self.shift_y * viewfac, viewfac

    @property
    def world_to_camera(self) -> np.ndarray:
        m = self.matrix_world.copy()
        # Blender ignores camera object scale for the view; normalise the rotation.
        m[:3, :3] = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)
        return np.linalg.inv(m)

    @property
    def position(self) -> np.ndarray:
        return self.matrix_world[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        f = -self.matrix_world[:3, 2]
        return f / np.linalg.norm(f)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        m = self.world_to_camera
        return p @ m[:3, :3].T + m[:3, 3]

    def camera_to_pixels(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space points -> (pixels N x 2, depth N: distance in front along -Z)."""
        cam = np.asarray(cam, dtype=np.float64)
        depth = -cam[..., 2]
        pixsize, ycor, dx, dy, _ = self._plane()
        if self.ortho:
            x, y = cam[..., 0], cam[..., 1]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                safe = np.where(depth > 0, depth, np.nan)
                x, y = cam[..., 0] / safe, cam[..., 1] / safe
        # Plane units -> "x pixels" relative to the frame centre, then undo the shift.
        u = x / pixsize - dx
        v = (y / pixsize - dy) / ycor
        px = self.width / 2.0 + u
        py = self.height / 2.0 - v
        return np.stack([px, py], axis=-1), depth

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N x 3) -> (pixel coordinates N x 2, view depth N)."""
        return self.camera_to_pixels(self.to_camera(points))

    def to_ndc(self, points: np.ndarray) -> np.ndarray:
        """World points -> normalised frame coordinates as bpy_extras' world_to_camera_view
        gives them: x, y in [0, 1] from the bottom-left corner, z = view depth."""
        px, depth = self.project(points)
        return np.stack([px[..., 0] / self.width, 1.0 - px[..., 1] / self.height, depth], -1)

    def in_frame(self, pixels: np.ndarray, depth: np.ndarray, margin: float = 0.0) -> np.ndarray:
        px = np.asarray(pixels)
        return (
            (depth > 0)
            & np.isfinite(px).all(-1)
            & (px[..., 0] >= -margin)
            & (px[..., 0] < self.width + margin)
            & (px[..., 1] >= -margin)
            & (px[..., 1] < self.height + margin)
        )

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space ray origins and directions through every pixel centre (H x W x 3)."""
        pixsize, ycor, dx, dy, _ = self._plane()
        xs = np.arange(self.width) + 0.5 - self.width / 2.0
        ys = self.height / 2.0 - (np.arange(self.height) + 0.5)
        u, v = np.meshgrid(xs, ys)
        px = (u + dx) * pixsize
        py = (v * ycor + dy) * pixsize
        if self.ortho:
            origins = np.stack([px, py, np.zeros_like(px)], -1)
            dirs = np.broadcast_to(np.array([0.0, 0.0, -1.0]), origins.shape).copy()
        else:
            origins = np.zeros(px.shape + (3,))
            dirs = np.stack([px, py, -np.ones_like(px)], -1)
        return origins, dirs
