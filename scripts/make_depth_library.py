"""Render the Krita plugin's depth library (hands and simple body poses) as depth maps.

    .venv/bin/python scripts/make_depth_library.py [--out DIR]

Writes krita_plugin/dreamwire_krita/depth_maps/<category>/<name>.png: 8-bit grey PNGs,
near = white as the depth ControlNets expect, black = nothing there (so a map composites
onto a depth layer by "max", nearer wins, with no alpha to manage).

Nothing is downloaded and no renderer is needed: each figure is a union of spheres
(a finger is a tapered capsule swept by overlapping spheres, the palm a grid of flattened
ones), and a union of spheres seen by an orthographic camera has an exact front surface,
the largest `cz + zs * sqrt(r^2 - dx^2 - dy^2)` over the spheres that cover a pixel. Only
element-wise IEEE operations (+, *, sqrt, max, a 2x2 box filter) are used, so any machine
renders the same bytes; tests/krita/test_logic_depth_library.py checks that the shipped
files are what this script makes. The hand is posed by forward kinematics from a few joint
angles per finger (sd-webui-depth-lib's hands are the model: open, relaxed, fist, pointing,
a V), and each right hand is mirrored into a left one.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "krita_plugin" / "dreamwire_krita" / "depth_maps"
SUPERSAMPLE = 2  # rendered at twice the size, then 2x2-averaged: smooth outlines


@dataclass(frozen=True)
class Sphere:
    x: float
    y: float  # up
    z: float  # toward the viewer
    r: float
    zs: float = 1.0  # depth squash: a flattened sphere (palm, torso)


@dataclass(frozen=True)
class Frame:
    """Which part of model space the picture shows, and how model depth becomes grey."""

    width: int
    height: int
    x0: float  # model x at the left edge
    y1: float  # model y at the top edge
    ppu: float  # pixels per model unit
    gain: float  # grey levels per model unit of depth below the nearest point


def capsule(a, b, ra: float, rb: float, zs: float = 1.0) -> list[Sphere]:
    """A tapered capsule from a to b (3-vectors) as spheres a quarter radius apart."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = max(2, math.ceil(float(np.linalg.norm(b - a)) / (min(ra, rb) / 4)) + 1)
    out = []
    for i in range(n):
        t = i / (n - 1)
        p = a + (b - a) * t
        out.append(Sphere(float(p[0]), float(p[1]), float(p[2]), ra + (rb - ra) * t, zs))
    return out


def render(spheres: list[Sphere], f: Frame) -> np.ndarray:
    """The front surface of the union of spheres as an 8-bit depth map (0 = nothing)."""
    s = SUPERSAMPLE
    w, h, ppu = f.width * s, f.height * s, f.ppu * s
    z = np.full((h, w), -np.inf)
    xs = f.x0 + (np.arange(w) + 0.5) / ppu
    ys = f.y1 - (np.arange(h) + 0.5) / ppu
    for sp in spheres:
        # Only the pixels under the sphere's disc: fast however many spheres there are.
        c0 = max(0, int((sp.x - sp.r - f.x0) * ppu))
        c1 = min(w, int((sp.x + sp.r - f.x0) * ppu) + 2)
        r0 = max(0, int((f.y1 - sp.y - sp.r) * ppu))
        r1 = min(h, int((f.y1 - sp.y + sp.r) * ppu) + 2)
        if c0 >= c1 or r0 >= r1:
            continue
        dx = xs[c0:c1][None, :] - sp.x
        dy = ys[r0:r1][:, None] - sp.y
        q = sp.r * sp.r - dx * dx - dy * dy
        front = np.where(q >= 0, sp.z + sp.zs * np.sqrt(np.maximum(q, 0.0)), -np.inf)
        np.maximum(z[r0:r1, c0:c1], front, out=z[r0:r1, c0:c1])
    hit = np.isfinite(z)
    near = z[hit].max()
    grey = np.zeros((h, w))
    # Fixed levels per unit below the nearest point (not stretched per picture), so a flat
    # open hand and a deep fist keep their true relief; never 0, which means "nothing".
    grey[hit] = np.clip(255.0 - (near - z[hit]) * f.gain, 1.0, 255.0)
    box = (grey[0::2, 0::2] + grey[1::2, 0::2]) + (grey[0::2, 1::2] + grey[1::2, 1::2])
    return np.floor(box / 4 + 0.5).astype(np.uint8)


def rot_x(p, deg: float):
    """Rotate points about the x axis (positive: the top comes toward the viewer)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    x, y, z = p
    return (x, y * c - z * s, y * s + z * c)


# -- hands -----------------------------------------------------------------------------------
# A right hand, palm to the viewer, fingers up, in centimetres: seen so, its thumb is on the
# picture's right. Knuckle x, segment lengths, tip radius per finger.
FINGERS = {
    "index": (2.75, (4.0, 2.5, 2.0), 0.78),
    "middle": (0.92, (4.4, 2.8, 2.1), 0.80),
    "ring": (-0.92, (4.1, 2.6, 2.0), 0.76),
    "little": (-2.65, (3.3, 1.9, 1.8), 0.68),
}
KNUCKLE_Y = 3.9
# Pose: per finger (spread degrees, three flexion degrees), then the thumb's joint
# directions (base to tip, as unnormalised vectors), then the tilt of the whole hand.
HAND_POSES = {
    "open": (
        {
            "index": (8, 4, 4, 2),
            "middle": (1, 4, 4, 2),
            "ring": (-7, 4, 4, 2),
            "little": (-16, 4, 4, 2),
        },
        ((0.75, 0.55, 0.25), (0.55, 0.8, 0.2), (0.4, 0.9, 0.15)),
        12,
    ),
    "relaxed": (
        {
            "index": (4, 18, 22, 12),
            "middle": (1, 24, 28, 14),
            "ring": (-3, 30, 32, 16),
            "little": (-7, 36, 34, 18),
        },
        ((0.55, 0.6, 0.55), (0.35, 0.75, 0.55), (0.2, 0.8, 0.55)),
        15,
    ),
    "fist": (
        {
            "index": (0, 88, 100, 55),
            "middle": (0, 90, 100, 55),
            "ring": (0, 92, 100, 55),
            "little": (0, 94, 100, 55),
        },
        ((0.3, 0.55, 0.8), (-0.6, 0.35, 0.7), (-0.85, 0.1, 0.5)),
        10,
    ),
    "pointing": (
        {
            "index": (2, 3, 3, 2),
            "middle": (0, 90, 100, 55),
            "ring": (0, 92, 100, 55),
            "little": (0, 94, 100, 55),
        },
        ((0.3, 0.55, 0.8), (-0.6, 0.35, 0.7), (-0.85, 0.1, 0.5)),
        10,
    ),
    "victory": (
        {
            "index": (12, 3, 3, 2),
            "middle": (-6, 3, 3, 2),
            "ring": (0, 92, 100, 55),
            "little": (0, 94, 100, 55),
        },
        ((0.3, 0.55, 0.8), (-0.6, 0.35, 0.7), (-0.85, 0.1, 0.5)),
        10,
    ),
}
HAND_FRAME = Frame(256, 256, x0=-11.6, y1=15.2, ppu=256 / 23.2, gain=11.0)


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def hand(pose: str) -> list[Sphere]:
    fingers, thumb, tilt = HAND_POSES[pose]
    parts: list[tuple] = []  # (a, b, ra, rb, zs): capsules before the tilt
    # Palm: flattened spheres over a rounded rectangle, a wrist below it.
    for j in range(15):
        y = -3.4 + j * 0.5
        half = 2.4 + 0.6 * j / 14  # narrower at the wrist
        for i in range(13):
            x = -half + i * half / 6
            parts.append(((x, y, 0.0), (x, y, 0.0), 1.55, 1.55, 0.85))
    parts.append(((0.0, -4.2, -0.2), (0.0, -9.5, -0.6), 2.6, 2.4, 0.75))
    for name, (spread, flex) in ((n, (v[0], v[1:])) for n, v in fingers.items()):
        kx, lengths, tip_r = FINGERS[name]
        a = np.array([kx, KNUCKLE_Y, 0.35])
        plane = np.array([math.sin(math.radians(spread)), math.cos(math.radians(spread)), 0.0])
        bend, r = 0.0, 0.95
        for length, angle in zip(lengths, flex, strict=True):
            bend += math.radians(angle)
            # Flexion curls the finger toward the viewer, as a palm-facing hand closes.
            d = plane * math.cos(bend) + np.array([0.0, 0.0, 1.0]) * math.sin(bend)
            b = a + d * length
            r_next = r - (0.95 - tip_r) / 3
            parts.append((tuple(a), tuple(b), r, r_next, 1.0))
            a, r = b, r_next
    a = np.array([2.9, -2.2, 0.6])
    r = 1.25
    for length, d in zip((3.8, 3.2, 2.6), thumb, strict=True):
        b = a + _unit(d) * length
        parts.append((tuple(a), tuple(b), r, r - 0.15, 1.0))
        a, r = b, r - 0.15
    out: list[Sphere] = []
    for a, b, ra, rb, zs in parts:
        out += capsule(rot_x(a, -tilt), rot_x(b, -tilt), ra, rb, zs)
    return out


# -- bodies ----------------------------------------------------------------------------------
# A plain mannequin facing the viewer, in centimetres (170 cm tall): joints per pose.
BODY_FRAME = Frame(336, 384, x0=-87.5, y1=190.0, ppu=384 / 200.0, gain=2.5)
_LIMBS = [  # joint pairs and radii: arms, legs
    ("l_shoulder", "l_elbow", 5.5, 4.5),
    ("l_elbow", "l_wrist", 4.5, 3.5),
    ("r_shoulder", "r_elbow", 5.5, 4.5),
    ("r_elbow", "r_wrist", 4.5, 3.5),
    ("l_hip", "l_knee", 8.5, 6.0),
    ("l_knee", "l_ankle", 6.0, 4.5),
    ("r_hip", "r_knee", 8.5, 6.0),
    ("r_knee", "r_ankle", 6.0, 4.5),
]
_BASE = {
    "head": (0, 158, 0),
    "neck": (0, 146, 0),
    "chest": (0, 128, 0),
    "pelvis": (0, 96, 0),
    "l_shoulder": (-19, 140, 0),
    "r_shoulder": (19, 140, 0),
    "l_hip": (-9.5, 92, 0),
    "r_hip": (9.5, 92, 0),
}
BODY_POSES = {
    "standing": {
        "l_elbow": (-23, 112, -2),
        "l_wrist": (-25, 86, 2),
        "r_elbow": (23, 112, -2),
        "r_wrist": (25, 86, 2),
        "l_knee": (-10.5, 50, 2),
        "l_ankle": (-10.5, 9, -2),
        "r_knee": (10.5, 50, 2),
        "r_ankle": (10.5, 9, -2),
    },
    "arms_out": {
        "l_elbow": (-47, 142, 0),
        "l_wrist": (-74, 144, 4),
        "r_elbow": (47, 142, 0),
        "r_wrist": (74, 144, 4),
        "l_knee": (-14, 50, 2),
        "l_ankle": (-18, 9, -2),
        "r_knee": (14, 50, 2),
        "r_ankle": (18, 9, -2),
    },
    "walking": {
        "l_elbow": (-22, 114, 10),
        "l_wrist": (-22, 90, 24),
        "r_elbow": (22, 114, -10),
        "r_wrist": (22, 90, -22),
        "l_knee": (-10, 52, -14),
        "l_ankle": (-10, 10, -30),
        "r_knee": (10, 54, 20),
        "r_ankle": (10, 12, 8),
    },
}


def body(pose: str) -> list[Sphere]:
    j = {**_BASE, **BODY_POSES[pose]}
    out = [Sphere(*j["head"], 11.0)]
    out += capsule(j["neck"], j["head"], 5.5, 5.5)
    out += capsule(j["pelvis"], j["chest"], 15.0, 17.0, zs=0.6)
    out += capsule(j["l_shoulder"], j["r_shoulder"], 7.0, 7.0, zs=0.8)
    out += capsule(j["l_hip"], j["r_hip"], 10.0, 10.0, zs=0.8)
    for a, b, ra, rb in _LIMBS:
        out += capsule(j[a], j[b], ra, rb)
    for side in "lr":
        out.append(Sphere(*j[f"{side}_wrist"], 4.5))  # hands as mittens
        ax, ay, az = j[f"{side}_ankle"]
        out += capsule((ax, ay - 3, az), (ax, ay - 5, az + 16), 4.5, 4.0)  # feet point forward
    return out


def build() -> dict[str, np.ndarray]:
    """Every asset by its path under depth_maps/ (posix, with .png)."""
    out: dict[str, np.ndarray] = {}
    for pose in HAND_POSES:
        right = render(hand(pose), HAND_FRAME)
        out[f"hands/{pose}_right.png"] = right
        out[f"hands/{pose}_left.png"] = np.ascontiguousarray(right[:, ::-1])
    for pose in BODY_POSES:
        out[f"poses/{pose}.png"] = render(body(pose), BODY_FRAME)
    return out


def main(argv: list[str] | None = None) -> int:
    from dreamwire.shared.codec import encode_png

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    total = 0
    for rel, grey in build().items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode_png(grey, level=9)
        path.write_bytes(data)
        total += len(data)
        print(f"{rel}: {grey.shape[1]}x{grey.shape[0]}, {len(data)} bytes")
    print(f"{total} bytes in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
