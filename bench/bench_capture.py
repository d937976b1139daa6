"""Scene capture cost at 1024x1024 against a bare Cycles render of the same view, in one
process (real Blender through the bpy module).

    .venv/bin/python bench/bench_capture.py [--size 1024] [--repeats 5]

The bare render is the floor (1 sample, no passes, nothing read back); the capture adds
the data passes, the EXR round trip and the conversions to control images. Runs
alternate so drift hits both alike. Prints median seconds and the ratio capture / bare.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpy  # noqa: E402

from blender_addon import capture  # noqa: E402


def scene_setup():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, -12, 2), rotation=(math.radians(80), 0, 0))
    scene.camera = bpy.context.object
    # A modest scene: a floor and a dozen 4k-face spheres.
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, -1))
    for i in range(12):
        bpy.ops.mesh.primitive_uv_sphere_add(
            segments=64, ring_count=32, location=((i % 4) * 2.5 - 4, (i // 4) * 3, 0)
        )
    return scene


def bare_render(scene, size):
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.cycles.use_denoising = False
    bpy.ops.render.render()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    scene = scene_setup()
    bare, cap = [], []
    bare_render(scene, args.size)  # warm-up: kernels and BVH caches
    for _ in range(args.repeats):
        t = time.perf_counter()
        bare_render(scene, args.size)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        capture.capture_all(
            scene, None, args.size, args.size, kinds=("depth", "normals", "segmentation")
        )
        cap.append(time.perf_counter() - t)
    b, c = statistics.median(bare), statistics.median(cap)
    print(f"size {args.size}x{args.size}, {args.repeats} runs each")
    print(f"bare Cycles render (1 sample): {b:.3f} s")
    print(f"capture depth+normals+segmentation: {c:.3f} s")
    print(f"ratio capture / bare: {c / b:.2f}")


if __name__ == "__main__":
    main()
