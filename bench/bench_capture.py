"""Scene capture cost at 1024x1024 against a bare Cycles render of the same view, in one
process (real Blender through the bpy module).

    .venv/bin/python bench/bench_capture.py [--size 1024] [--repeats 5] [--lights 2]
                                            [--stages]

The bare render is the floor (1 sample, the scene's lights, no passes, nothing read
back); the capture adds the data passes, the EXR round trip and the conversions to
control images. Runs alternate so drift hits both alike. Prints median seconds and the
ratio capture / bare; --stages also times the parts of a capture one by one (render and
read back, each conversion, showing the three images in Blender).
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

KINDS = ("depth", "normals", "segmentation")


def scene_setup(lights: int = 2):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, -12, 2), rotation=(math.radians(80), 0, 0))
    scene.camera = bpy.context.object
    # A modest scene: a floor, a dozen 4k-face spheres, a sun and point lights.
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, -1))
    for i in range(12):
        bpy.ops.mesh.primitive_uv_sphere_add(
            segments=64, ring_count=32, location=((i % 4) * 2.5 - 4, (i // 4) * 3, 0)
        )
    for i in range(lights):
        if i == 0:
            bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.4))
        else:
            bpy.ops.object.light_add(type="POINT", location=(3 * i - 4, -4, 4))
            bpy.context.object.data.energy = 500
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


def stages(scene, size: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each part of a capture, timed one by one."""
    times: dict[str, list[tuple[float, float]]] = {}

    def timed(name, fn, *args, **kwargs):
        t, u = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        times.setdefault(name, []).append((time.perf_counter() - t, time.process_time() - u))
        return out

    for _ in range(repeats):
        p = timed("render + read passes", capture.render_passes, scene, None, size, size)
        timed("depth image", capture.capture_depth, scene, passes=p)
        n = timed("normal image", capture.capture_normals, scene, passes=p)
        seg, _ = timed("segmentation image", capture.capture_segmentation, scene, passes=p)
        timed("store_image (one 1024x1024 image)", capture.store_image, "bench", n)
        timed("store_image (one 1024x1024 image)", capture.store_image, "bench", seg)
    return {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lights", type=int, default=2, help="a sun, then point lights")
    ap.add_argument("--stages", action="store_true")
    args = ap.parse_args()
    scene = scene_setup(args.lights)
    # Wall time, and the CPU time of the process (all threads): on a shared machine the
    # latter barely moves with other jobs' load.
    bare, cap, bare_cpu, cap_cpu = [], [], [], []
    bare_render(scene, args.size)  # warm-up: kernels and BVH caches
    for _ in range(args.repeats):
        t, u = time.perf_counter(), time.process_time()
        bare_render(scene, args.size)
        bare.append(time.perf_counter() - t)
        bare_cpu.append(time.process_time() - u)
        t, u = time.perf_counter(), time.process_time()
        capture.capture_all(scene, None, args.size, args.size, kinds=KINDS)
        cap.append(time.perf_counter() - t)
        cap_cpu.append(time.process_time() - u)
    b, c = statistics.median(bare), statistics.median(cap)
    bc, cc = statistics.median(bare_cpu), statistics.median(cap_cpu)
    print(f"size {args.size}x{args.size}, {args.lights} lights, {args.repeats} runs each")
    print(f"bare Cycles render (1 sample): {b:.3f} s (CPU {bc:.3f} s)")
    print(f"capture depth+normals+segmentation: {c:.3f} s (CPU {cc:.3f} s)")
    print(f"ratio capture / bare: {c / b:.2f} (CPU {cc / bc:.2f})")
    if args.stages:
        for name, (wall, cpu) in stages(scene, args.size, args.repeats).items():
            print(f"  {name}: {wall * 1000:.0f} ms (CPU {cpu * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
