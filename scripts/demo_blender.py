"""The Blender main job, headless: a small scene is captured, generated on the default
(tiny) model through a real backend process, projected onto the meshes from cameras placed
by coverage, unseen texels filled, PBR maps baked (Marigold), and saved as a .blend plus
PNGs.

    .venv/bin/python scripts/demo_blender.py [--out out/blender-demo] [--models ROOT]

Without --models the built-in tiny models are built into OUT/models first. The add-on is
built with blender_addon/build.py (pyzmq wheels are downloaded once and cached under
build/wheel-cache) and installed into a private Blender user folder inside OUT, exactly as
an artist installs the zip; `--from-source` registers the checkout instead (no download).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = "dreamwire: listening on "


def start_backend(models: Path, out: Path) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "dreamwire.backend",
        "serve",
        "--models",
        str(models),
        "--bind",
        "tcp://127.0.0.1:0",
        "--out",
        str(out / "backend"),
    ]
    log = open(out / "backend-console.log", "wb")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
    )
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            if line.startswith(READY) and not found:
                found.append(line[len(READY) :].strip())

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 300
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the backend did not start; see {out / 'backend-console.log'}")
        time.sleep(0.1)
    return proc, found[0]


def build_scene(bpy):
    from mathutils import Vector

    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(0, 0, 0.8))
    bpy.context.object.name = "Crate"
    bpy.ops.mesh.primitive_uv_sphere_add(
        radius=0.6, location=(1.7, 0.3, 0.6), segments=24, ring_count=12
    )
    bpy.context.object.name = "Ball"
    bpy.ops.object.shade_smooth()
    bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, 0))
    bpy.context.object.name = "Ground"
    light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    light.rotation_euler = (0.6, 0.2, 0.4)
    bpy.context.scene.collection.objects.link(light)
    cams = []
    for name, angle in (("CamFront", -20.0), ("CamSide", 50.0)):
        a = math.radians(angle)
        cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        cam.location = (7 * math.sin(a), -7 * math.cos(a), 4.0)
        cam.rotation_euler = (
            (Vector((0.5, 0, 0.7)) - cam.location).to_track_quat("-Z", "Y").to_euler()
        )
        bpy.context.scene.collection.objects.link(cam)
        cams.append(cam)
    bpy.context.scene.camera = cams[0]
    return cams


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "blender-demo")
    ap.add_argument("--models", type=Path, help="models root (default: build the tiny models)")
    ap.add_argument("--size", type=int, default=128, help="generation size in pixels")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument(
        "--from-source", action="store_true", help="register the checkout, skip the zip"
    )
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    models = args.models
    if models is None:
        models = out / "models"
        if not (models / "models" / "Stable-diffusion").exists():
            print("== building the tiny models into", models)
            from dreamwire.backend.tiny import build_all

            build_all(models)
        if not (models / "models" / "Marigold").exists():
            print("== building the tiny Marigold models (PBR maps) into", models)
            from dreamwire.backend.tiny import marigold

            marigold.build(models)
    print("== starting the backend")
    backend, address = start_backend(models, out)
    print("   listening on", address)
    try:
        os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender-user")
        if not args.from_source:
            print("== building the add-on zip")
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "blender_addon" / "build.py"),
                    "--out",
                    str(out / "dist"),
                ],
                check=True,
            )
        import bpy

        if args.from_source:
            sys.path.insert(0, str(ROOT))
            import blender_addon

            blender_addon.register()
            module = "blender_addon"
        else:
            zip_path = next((out / "dist").glob("dreamwire-*.zip"))
            bpy.ops.extensions.package_install_files(
                filepath=str(zip_path), repo="user_default", enable_on_install=True
            )
            module = "bl_ext.user_default.dreamwire"
        prefs = (
            bpy.context.preferences.addons[module].preferences
            if module in bpy.context.preferences.addons
            else None
        )
        if prefs is not None:
            prefs.address = address
        else:  # registered from source without an add-on entry: point the connection directly
            sys.modules[module].connection.CONN.ensure = _direct(
                sys.modules[module].connection.CONN, address
            )

        cams = build_scene(bpy)
        scene = bpy.context.scene
        s = scene.dreamwire
        s.prompt = "a (weathered:1.2) wooden crate and a rubber ball on a stone floor"
        s.negative = "blurry"
        s.sampler = "Euler a"
        s.steps = args.steps
        s.seed = 42
        s.width = s.height = args.size
        s.texture_size = 256
        s.depth.enabled = True
        s.normals.enabled = True
        s.normals.weight = 0.5
        s.output_dir = str(out / "textures") + os.sep
        scene.render.resolution_x = scene.render.resolution_y = args.size

        print("== capturing depth, normals and segmentation from", cams[0].name)
        import importlib

        from dreamwire.shared.codec import encode_png

        capture = importlib.import_module(module + ".capture")
        caps = capture.capture_all(
            scene, cams[0], args.size, args.size, kinds=("depth", "normals", "segmentation")
        )
        (out / "captures").mkdir(exist_ok=True)
        for kind in ("depth", "normals", "segmentation"):
            (out / "captures" / f"{kind}.png").write_bytes(encode_png(caps[kind]))

        for obj in scene.objects:
            obj.select_set(obj.type == "MESH")
        bpy.context.view_layer.objects.active = scene.objects["Crate"]
        # No cameras listed: Multi-view places its own by coverage; unseen texels are filled
        # (the default) and each view's PBR maps are baked and wired into the materials.
        s.auto_cameras = True
        s.auto_camera_count = 4
        s.pbr_maps = True
        print("== multi-view projection from cameras placed by coverage, with PBR maps")
        t0 = time.monotonic()
        result = bpy.ops.dreamwire.project_multiview()
        status = bpy.context.window_manager.dreamwire_status
        print(f"   {sorted(result)}: {status.text} ({time.monotonic() - t0:.1f} s)")

        blend = out / "dreamwire-demo.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        summary = {
            "blend": str(blend),
            "captures": sorted(str(p) for p in (out / "captures").glob("*.png")),
            "textures": sorted(str(p) for p in (out / "textures").glob("*.png")),
            "backend_results": sorted(str(p) for p in (out / "backend").rglob("*.png")),
            "status": status.text,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary, indent=1))
        return 0 if "FINISHED" in result else 1
    finally:
        backend.terminate()
        try:
            backend.wait(15)
        except subprocess.TimeoutExpired:
            backend.kill()


def _direct(conn, address):
    from dreamwire.shared.client import Client

    def ensure(context=None):
        if conn.client is None:
            conn.client = Client(address, name="dreamwire-blender-demo")
        return conn.client

    return ensure


if __name__ == "__main__":
    raise SystemExit(main())
