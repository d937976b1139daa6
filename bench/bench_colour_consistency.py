"""Colour consistency of multi-view projection with a stand-in generator (no model, no
Blender): the right answer is known, so the blending alone is measured.

    .venv/bin/python bench/bench_colour_consistency.py [--trials 5] [--size 128]

1. Exposure: a painted cube, four orbit views in sequence. Each "generation" is the cube's
   true paint under its own exposure and tint (gain 0.85-1.15, +-15 levels per channel;
   the first view ungraded), pasted into the view's inpaint mask over the texture so far,
   as the backend pastes an inpainting. Reports the CIELAB difference (dE76) between the
   final texture and the first view's colours over the seen texels: what the artist sees
   as patches.
2. Silhouettes: a board in front of a wall, three views; each "generation" draws the
   board 2 px too wide. Reports the wall texels that took board colour (dE > 10).

Settings compared: before (exponent 2, no matching, no feather) and the panel's new
defaults (exponent 3, feather 3 px, matching by mean/std or histogram).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "blender"))  # the core tests' scene helpers

from test_core_multiview import cube  # noqa: E402
from test_core_projection import make_cam, quad  # noqa: E402

from blender_addon.core.texturing.color_match import MatchSettings, match_view  # noqa: E402
from blender_addon.core.texturing.color_space import srgb_to_lab  # noqa: E402
from blender_addon.core.texturing.multiview import (  # noqa: E402
    SurfaceMesh,
    TextureAccumulator,
    orbit_positions,
    plan_view,
)
from blender_addon.core.texturing.projection import (  # noqa: E402
    BakeSettings,
    sample_view,
    texel_surface,
    view_depth_buffer,
)

SETTINGS = {
    "before: exp 2, no match, no feather": (BakeSettings(facing_power=2.0), None),
    "exp 3 only": (BakeSettings(facing_power=3.0), None),
    "new: exp 3, feather 3, mean/std": (
        BakeSettings(facing_power=3.0, edge_feather_px=3.0),
        "mean_std",
    ),
    "new: exp 3, feather 3, histogram": (
        BakeSettings(facing_power=3.0, edge_feather_px=3.0),
        "histogram",
    ),
}


def paint(p: np.ndarray) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return np.stack(
        [
            128 + 60 * np.sin(2 * x + y),
            120 + 50 * np.cos(3 * z - x),
            110 + 45 * np.sin(x + 2 * y + z),
        ],
        -1,
    )


def render(cam, tris, grade) -> np.ndarray:
    r = view_depth_buffer(cam, tris)
    img = np.full((cam.height, cam.width, 3), 128.0)
    img[r.mask] = grade(paint(r.interpolate(tris)[r.mask]))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def exposure_trial(rng, size: int) -> dict[str, tuple[float, float]]:
    tris, normals, uvs = cube()
    surf = texel_surface(uvs, tris, normals, (256, 256))
    cams = [
        make_cam(p, (0, 0, 0), size=size, lens=35)
        for p in orbit_positions(np.zeros(3), 6.0, 4, elevation_deg=25)
    ]
    grades = [lambda c: c]
    for _ in cams[1:]:
        g, t = rng.uniform(0.85, 1.15), rng.uniform(-15, 15, 3)
        grades.append(lambda c, g=g, t=t: c * g + t)
    out = {}
    for name, (bake, method) in SETTINGS.items():
        acc = TextureAccumulator(surf.mask)
        for i, (cam, grade) in enumerate(zip(cams, grades, strict=True)):
            img, mask = render(cam, tris, grade), None
            if i:
                plan = plan_view(
                    cam, [SurfaceMesh(tris, uvs)], [acc.texture()], [acc.coverage_image()]
                )
                mask = plan.mask
                img = np.where(mask[..., None] > 0, img, plan.init_image)
            zb = view_depth_buffer(cam, tris).depth
            s = sample_view(cam, img, surf.positions, surf.normals, zb, bake)
            if method:
                (s,), _ = match_view([acc], [s], mask, MatchSettings(method=method))
            acc.add(s)
        seen = acc.weight_sum > 1e-8
        want = np.clip(paint(surf.positions[seen]), 0, 255)
        de = np.linalg.norm(srgb_to_lab(acc.colors()[seen]) - srgb_to_lab(want), axis=1)
        out[name] = (float(de.mean()), float(np.percentile(de, 95)))
    return out


def silhouette_trial(size: int) -> dict[str, float]:
    wall, wn, wuv = quad((0, 1, 0), 3.0, "y", -1)
    board, _, _ = quad((0, -0.5, 0), 0.6, "y", -1)
    scene = np.concatenate([wall, board])
    surf = texel_surface(wuv, wall, wn, (256, 256))
    out = {}
    for name, (bake, _) in SETTINGS.items():
        acc = TextureAccumulator(surf.mask)
        for deg in (0, 35, -35):
            a = math.radians(deg)
            cam = make_cam((5 * math.sin(a), -5 * math.cos(a), 0.0), (0, 0, 0), size=size, lens=35)
            r = view_depth_buffer(cam, scene)
            drawn = r.mask & (r.tri >= len(wall))
            for _ in range(2):  # the generated board is 2 px wider than the geometry
                p = np.pad(drawn, 1)
                drawn = drawn | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
            img = np.full((size, size, 3), 200, np.uint8)
            img[drawn] = (200, 30, 30)
            acc.add(sample_view(cam, img, surf.positions, surf.normals, r.depth, bake))
        seen = acc.weight_sum > 1e-8
        de = np.linalg.norm(
            srgb_to_lab(acc.colors()[seen]) - srgb_to_lab([200.0, 200, 200]), axis=1
        )
        out[name] = float((de > 10).mean() * 100)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--size", type=int, default=128, help="view size in pixels")
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    trials = [exposure_trial(rng, args.size) for _ in range(args.trials)]
    print(f"Exposure ({args.trials} trials, {args.size}px views): dE76 to the first view")
    for name in SETTINGS:
        mean = np.mean([t[name][0] for t in trials])
        p95 = np.mean([t[name][1] for t in trials])
        print(f"  {name:36s} mean {mean:5.2f}  p95 {p95:5.2f}")
    print(f"Silhouettes ({args.size}px views, board drawn 2 px wide): wall texels bled")
    for name, share in silhouette_trial(args.size).items():
        print(f"  {name:36s} {share:5.2f} %")


if __name__ == "__main__":
    main()
