"""Rectangles in document pixels and the size rules a job has to obey."""

from __future__ import annotations

from dataclasses import dataclass

# Job.validate wants multiples of 8; below 64 the tiny and real UNets both misbehave.
SIZE_STEP = 8
MIN_SIDE = 64


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def intersect(self, other: Rect) -> Rect:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def grow(self, pad: int) -> Rect:
        return Rect(self.x - pad, self.y - pad, self.w + 2 * pad, self.h + 2 * pad)

    def contains(self, other: Rect) -> bool:
        return (
            other.x >= self.x
            and other.y >= self.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def offset_in(self, outer: Rect) -> tuple[int, int]:
        """Top-left of self relative to outer."""
        return self.x - outer.x, self.y - outer.y


def job_side(n: int) -> int:
    """The generation size for a target side: rounded up to the step, at least MIN_SIDE.

    Rounding up (then cropping the result) keeps the pixel scale of the canvas, where
    resizing would blur the result against the surrounding paint.
    """
    n = max(int(n), MIN_SIDE)
    return -(-n // SIZE_STEP) * SIZE_STEP


def snap_region(rect: Rect, bounds: Rect) -> Rect:
    """Grow rect to job-legal sides, keeping it inside bounds where bounds allow.

    Used for img2img and inpaint regions, whose pixels must all come from the canvas:
    the rect grows right/down first, then left/up, and only leaves bounds when the
    canvas itself is smaller than a legal side.
    """
    w, h = job_side(rect.w), job_side(rect.h)
    x = _place(rect.x, w, bounds.x, bounds.right)
    y = _place(rect.y, h, bounds.y, bounds.bottom)
    return Rect(x, y, w, h)


def _place(start: int, size: int, lo: int, hi: int) -> int:
    if start + size > hi:
        start = hi - size
    return max(start, lo) if hi - lo >= size else lo
