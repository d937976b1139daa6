"""Integer rasterisation that reproduces OpenCV's 8-connected drawing bit for bit.

The ControlNet OpenPose annotator draws with `cv2.ellipse2Poly`, `cv2.fillConvexPoly` and
`cv2.circle`. ControlNet models learned those exact pixels, so a pose image drawn any
other way is a (slightly) different input. Blender's and Krita's Pythons have no cv2, so
this module redoes OpenCV's integer arithmetic in plain Python on numpy arrays:

- `ellipse2poly`: OpenCV's 1-degree sine table (float32), double maths, round-half-even.
- `fill_convex_poly`: the outline drawn with Bresenham lines (as OpenCV does for
  LINE_8), then scanlines with 16.16 fixed-point edges.
- `fill_circle`: OpenCV's midpoint circle with horizontal spans.
- `line`: `cv2.line`, thick ones as OpenCV's ThickLine (a 16.16 fixed-point rectangle and
  round caps), which MediaPipe's face drawing uses (mediapipe_face.py).

Only the code paths the annotators use are ported (LINE_8, 8-bit images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

XY_SHIFT = 16
XY_ONE = 1 << XY_SHIFT

# OpenCV's table holds sin(i degrees) for i in 0..450 rounded to 7 decimals, as float32.
_SIN_TABLE = [float(np.float32(round(math.sin(math.radians(i)), 7))) for i in range(451)]
_SIN_TABLE[180] = 0.0
_SIN_TABLE[360] = 0.0


def _cround(v: float) -> int:
    """cvRound: nearest integer, ties to even (the FPU default mode OpenCV relies on)."""
    return int(round(v))


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero), unlike Python's floor division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def ellipse2poly(
    center: tuple[int, int],
    axes: tuple[int, int],
    angle: int,
    arc_start: int = 0,
    arc_end: int = 360,
    delta: int = 1,
) -> list[tuple[int, int]]:
    """Vertices of an ellipse arc as `cv2.ellipse2Poly` returns them (integer points)."""
    if not 0 < delta <= 180:
        raise ValueError("delta must be in (0, 180]")
    cx, cy = float(center[0]), float(center[1])
    aw, ah = float(axes[0]), float(axes[1])
    while angle < 0:
        angle += 360
    while angle > 360:
        angle -= 360
    if arc_start > arc_end:
        arc_start, arc_end = arc_end, arc_start
    while arc_start < 0:
        arc_start += 360
        arc_end += 360
    while arc_end > 360:
        arc_end -= 360
        arc_start -= 360
    if arc_end - arc_start > 360:
        arc_start, arc_end = 0, 360
    a = angle + (360 if angle < 0 else 0)
    beta = _SIN_TABLE[a]  # sin
    alpha = _SIN_TABLE[450 - a]  # cos

    pts: list[tuple[int, int]] = []
    prev = None
    i = arc_start
    while i < arc_end + delta:
        ang = min(i, arc_end)
        if ang < 0:
            ang += 360
        x = aw * _SIN_TABLE[450 - ang]
        y = ah * _SIN_TABLE[ang]
        pt = (_cround(cx + x * alpha - y * beta), _cround(cy + x * beta + y * alpha))
        if pt != prev:
            pts.append(pt)
            prev = pt
        i += delta
    if len(pts) == 1:
        pts = [(int(center[0]), int(center[1]))] * 2
    return pts


def _clip_line(w: int, h: int, x1: int, y1: int, x2: int, y2: int):
    """cv::clipLine: Cohen-Sutherland style clipping to [0,w-1] x [0,h-1]."""
    right, bottom = w - 1, h - 1
    if w <= 0 or h <= 0:
        return False, x1, y1, x2, y2
    c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
    c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += _cdiv((a - y1) * (x2 - x1), (y2 - y1))
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += _cdiv((a - y2) * (x2 - x1), (y2 - y1))
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += _cdiv((a - x1) * (y2 - y1), (x2 - x1))
                x1 = a
                c1 = 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += _cdiv((a - x2) * (y2 - y1), (x2 - x1))
                x2 = a
                c2 = 0
    return (c1 | c2) == 0, x1, y1, x2, y2


def _line8(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color) -> None:
    """cv::Line with connectivity 8 (LineIterator walking left to right)."""
    h, w = img.shape[:2]
    x1, y1 = p1
    x2, y2 = p2
    if not (0 <= x1 < w and 0 <= x2 < w and 0 <= y1 < h and 0 <= y2 < h):
        inside, x1, y1, x2, y2 = _clip_line(w, h, x1, y1, x2, y2)
        if not inside:
            return
    if x2 < x1:
        x1, y1, x2, y2 = x2, y2, x1, y1
    dx = x2 - x1
    dy = y2 - y1
    sy = -1 if dy < 0 else 1
    dy = abs(dy)
    steep = dy > dx
    if steep:
        dx, dy = dy, dx
    err = dx - (dy + dy)
    plus_delta = dx + dx
    minus_delta = -(dy + dy)
    x, y = x1, y1
    for _ in range(dx + 1):
        img[y, x] = color
        # The iterator always moves along the major axis and, when err < 0, also along
        # the minor one (OpenCV's plusStep/minusStep pair).
        step_minor = err < 0
        err += minus_delta + (plus_delta if step_minor else 0)
        if steep:
            y += sy
            if step_minor:
                x += 1
        else:
            x += 1
            if step_minor:
                y += sy


def _hline(img: np.ndarray, y: int, x1: int, x2: int, color) -> None:
    h, w = img.shape[:2]
    if y < 0 or y >= h or x2 < 0 or x1 >= w:
        return
    img[y, max(x1, 0) : min(x2, w - 1) + 1] = color


def fill_convex_poly(
    img: np.ndarray, points: Sequence[tuple[int, int]], color, shift: int = 0
) -> np.ndarray:
    """`cv2.fillConvexPoly(img, points, color, shift=shift)` (LINE_8), in place; returns
    img. `shift` 0 (integer points) or XY_SHIFT (16.16 fixed point, as cv2.line's thick
    lines fill their rectangle)."""
    if shift not in (0, XY_SHIFT):
        raise ValueError("shift must be 0 or 16")
    v = [(int(x), int(y)) for x, y in points]
    npts = len(v)
    if npts == 0:
        return img
    h, w = img.shape[:2]
    color = np.asarray(color, dtype=img.dtype)
    delta = 1 << shift >> 1

    p0 = v[-1]
    imin = 0
    xmin = xmax = v[0][0]
    ymin = ymax = v[0][1]
    for i, p in enumerate(v):
        if p[1] < ymin:
            ymin = p[1]
            imin = i
        ymax = max(ymax, p[1])
        xmax = max(xmax, p[0])
        xmin = min(xmin, p[0])
        if shift == 0:
            _line8(img, p0, p, color)
        else:
            _line_fixed(img, p0, p, color)
        p0 = p

    xmin, xmax = (xmin + delta) >> shift, (xmax + delta) >> shift
    ymin, ymax = (ymin + delta) >> shift, (ymax + delta) >> shift
    if npts < 3 or xmax < 0 or ymax < 0 or xmin >= w or ymin >= h:
        return img
    ymax = min(ymax, h - 1)

    half = XY_ONE >> 1
    edge_idx = [imin, imin]
    edge_di = [1, npts - 1]
    edge_x = [-XY_ONE, -XY_ONE]
    edge_dx = [0, 0]
    y = ymin
    edge_ye = [y, y]
    edges = npts
    while True:
        for i in range(2):
            if y >= edge_ye[i]:
                idx0 = edge_idx[i]
                di = edge_di[i]
                idx = idx0 + di
                if idx >= npts:
                    idx -= npts
                while True:
                    more = edges > 0
                    edges -= 1
                    if not more:
                        break
                    ty = (v[idx][1] + delta) >> shift
                    if ty > y:
                        xs = v[idx0][0] << (XY_SHIFT - shift)
                        xe = v[idx][0] << (XY_SHIFT - shift)
                        edge_ye[i] = ty
                        edge_dx[i] = _cdiv((xe - xs) * 2 + (ty - y), 2 * (ty - y))
                        edge_x[i] = xs
                        edge_idx[i] = idx
                        break
                    idx0 = idx
                    idx += di
                    if idx >= npts:
                        idx -= npts
        if edges < 0:
            break
        if y >= 0:
            left, right = (1, 0) if edge_x[0] > edge_x[1] else (0, 1)
            xx1 = (edge_x[left] + half) >> XY_SHIFT
            xx2 = (edge_x[right] + half) >> XY_SHIFT
            if xx2 >= 0 and xx1 < w:
                _hline(img, y, xx1, xx2, color)
        edge_x[0] += edge_dx[0]
        edge_x[1] += edge_dx[1]
        y += 1
        if y > ymax:
            break
    return img


def _line_fixed(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color) -> None:
    """OpenCV's Line2: a 1-pixel line between 16.16 fixed-point ends (a polygon's outline
    when it is filled with shift 16)."""
    h, w = img.shape[:2]
    inside, x1, y1, x2, y2 = _clip_line(w << XY_SHIFT, h << XY_SHIFT, *p1, *p2)
    if not inside:
        return
    dx, dy = x2 - x1, y2 - y1
    ax, ay = abs(dx), abs(dy)
    if ax > ay:
        if dx < 0:
            x1, y1, x2, y2 = x2, y2, x1, y1
            dy = -dy
        y_step = _cdiv(dy << XY_SHIFT, ax | 1)
        count = (x2 - x1) >> XY_SHIFT
    else:
        if dy < 0:
            x1, y1, x2, y2 = x2, y2, x1, y1
            dx = -dx
        x_step = _cdiv(dx << XY_SHIFT, ay | 1)
        count = (y2 - y1) >> XY_SHIFT
    x1 += XY_ONE >> 1
    y1 += XY_ONE >> 1

    def put(x: int, y: int) -> None:
        if 0 <= x < w and 0 <= y < h:
            img[y, x] = color

    put((x2 + (XY_ONE >> 1)) >> XY_SHIFT, (y2 + (XY_ONE >> 1)) >> XY_SHIFT)
    if ax > ay:
        x = x1 >> XY_SHIFT
        for _ in range(count + 1):
            put(x, y1 >> XY_SHIFT)
            x += 1
            y1 += y_step
    else:
        y = y1 >> XY_SHIFT
        for _ in range(count + 1):
            put(x1 >> XY_SHIFT, y)
            x1 += x_step
            y += 1


def line(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color, thickness: int = 1):
    """`cv2.line(img, p1, p2, color, thickness)` (LINE_8, integer ends), in place. A thick
    line is OpenCV's ThickLine: the rectangle around the segment filled in 16.16 fixed
    point, and a filled circle of radius round(thickness / 2) on each end."""
    if thickness <= 1:
        _line8(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), color)
        return img
    x0, y0 = int(p1[0]) << XY_SHIFT, int(p1[1]) << XY_SHIFT
    x1, y1 = int(p2[0]) << XY_SHIFT, int(p2[1]) << XY_SHIFT
    dx, dy = (x0 - x1) / XY_ONE, (y1 - y0) / XY_ONE
    r = dx * dx + dy * dy
    odd = thickness & 1
    half = thickness << (XY_SHIFT - 1)
    if abs(r) > 2.220446049250313e-16:
        r = (half + odd * XY_ONE * 0.5) / math.sqrt(r)
        ddx, ddy = _cround(dy * r), _cround(dx * r)
        rect = [(x0 + ddx, y0 + ddy), (x0 - ddx, y0 - ddy), (x1 - ddx, y1 - ddy)]
        fill_convex_poly(img, [*rect, (x1 + ddx, y1 + ddy)], color, shift=XY_SHIFT)
    radius = (half + (XY_ONE >> 1)) >> XY_SHIFT
    for x, y in ((x0, y0), (x1, y1)):
        centre = ((x + (XY_ONE >> 1)) >> XY_SHIFT, (y + (XY_ONE >> 1)) >> XY_SHIFT)
        fill_circle(img, centre, radius, np.asarray(color, dtype=img.dtype))
    return img


def fill_circle(img: np.ndarray, center: tuple[int, int], radius: int, color) -> np.ndarray:
    """`cv2.circle(img, center, radius, color, thickness=-1)` (LINE_8), in place."""
    cx, cy = int(center[0]), int(center[1])
    color = np.asarray(color, dtype=img.dtype)
    err, dx, dy, plus, minus = 0, radius, 0, 1, (radius << 1) - 1
    while dx >= dy:
        _hline(img, cy - dy, cx - dx, cx + dx, color)
        _hline(img, cy + dy, cx - dx, cx + dx, color)
        _hline(img, cy - dx, cx - dy, cx + dy, color)
        _hline(img, cy + dx, cx - dy, cx + dy, color)
        dy += 1
        err += plus
        plus += 2
        mask = 0 if err <= 0 else -1
        err -= minus & mask
        dx += mask
        minus -= mask & 2
    return img
