"""Texturing quality: coverage, fill and seams of multi-view projection, per method, on
scenes built by script, in real Blender (the bpy module), with a known right answer.

    .venv/bin/python bench/bench_texturing.py [--size 256] [--texture 256] [--views 4]
                                              [--json bench/texturing.json] [--renders DIR]
                                              [--scenes crate_and_ball capsule torus]

The add-on's own projection action (`actions.project`, the generator the N-panel's
operator runs) is driven here with a deterministic stand-in for the backend: each view's
"generated" image is a smooth colour field of world position, rendered through the
project's rasteriser from that camera, with a per-view exposure/tint drift (seeded) of the
kind diffusion gives when it paints views separately. The right texture is therefore known
for every texel (the same field at the texel's surface point), and each method is judged
on it:

- coverage: share of texels inside UV islands that views coloured; filled: share filled
  afterwards (dilation across seams, UV inpaint); empty: share left without colour;
- error: mean CIE76 difference from the right colour over the texels the views covered;
  fill_error: the same over filled texels (dilated from neighbours across seams; the UV
  inpaint pass's stand-in paints nothing new, so inpainted texels keep the fill's guess);
- seam_p99: the worst 1% of colour steps between neighbouring covered texels beyond the
  right texture's own step there (what view boundaries and blending add; seams are few
  texels, so a mean would hide them);
- uv_seam: the mean such excess step across UV seams (texel pairs facing each other across
  one mesh edge, the fill's seam links), over pairs the views covered.

With the tiny random model the generated colours are noise, so this stand-in is how the
methods are compared; the numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import actions, bpy_data  # noqa: E402
from blender_addon.core.texturing import projection, texel_fill, view_grid  # noqa: E402
from blender_addon.core.texturing.color_space import srgb_to_lab  # noqa: E402
from blender_addon.core.texturing.multiview import orbit_positions  # noqa: E402

# -- scenes ---------------------------------------------------------------------------


def _reset():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def scene_crate_and_ball():
    """The Quickstart's scene: a crate and a ball on a floor."""
    scene = _reset()
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, -1))
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(-0.9, 0, -0.2))
    crate = bpy.context.object
    crate.name = "Crate"
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(1.0, 0.2, -0.3))
    ball = bpy.context.object
    ball.name = "Ball"
    return scene, [crate, ball]


def scene_capsule():
    """A character-like capsule with a face (a nose on its front, -Y) standing on a floor."""
    scene = _reset()
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, -1.6))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(0, 0, 0))
    body = bpy.context.object
    body.scale = (1.0, 0.8, 2.4)
    body.name = "Capsule"
    bpy.ops.mesh.primitive_cube_add(size=0.25, location=(0, -0.55, 0.9))
    nose = bpy.context.object
    nose.name = "Nose"
    return scene, [body, nose]


def scene_torus():
    """A torus: its inner faces are hidden from most viewpoints."""
    scene = _reset()
    bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.35)
    torus = bpy.context.object
    torus.name = "Torus"
    return scene, [torus]


SCENES = {"crate_and_ball": scene_crate_and_ball, "capsule": scene_capsule, "torus": scene_torus}


# -- the known answer ------------------------------------------------------------------


def truth(points: np.ndarray) -> np.ndarray:
    """The right colour (0..255 RGB) of world points: a smooth field, distinct everywhere
    on these scenes so that a texel baked from the wrong place shows."""
    p = np.asarray(points, np.float64)
    return 127.5 + 110.0 * np.stack(
        [np.sin(2.1 * p[:, 0] + 0.5), np.sin(2.3 * p[:, 1] + 1.7), np.sin(1.9 * p[:, 2] + 2.9)],
        axis=1,
    )


def stand_in_image(cam, tris: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """What the stand-in generator paints from `cam`: the field on every visible surface,
    with this view's exposure/tint drift (gain and offset per channel)."""
    r = projection.view_depth_buffer(cam, tris)
    img = np.full((cam.height, cam.width, 3), 128.0)
    if r.mask.any():
        pos = r.interpolate(tris)[r.mask]
        img[r.mask] = truth(pos)
    img = img * drift[0] + drift[1]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@dataclass
class _Image:
    image: np.ndarray


@dataclass
class _Result:
    images: list


# -- running one method ----------------------------------------------------------------


@dataclass
class Method:
    name: str
    cameras: str  # "orbit": the ring Add Orbit Cameras makes
    settings: dict  # scene.dreamwire properties set for the run (those that exist)


# The blending and filling of earlier versions (before issue 14's work): facing ratio
# squared, no colour matching, no edge feather, unseen texels left empty.
BEFORE = {
    "colour_match": False,
    "facing_exponent": 2.0,
    "edge_feather": 0.0,
    "fill_distance": 0,
    "fill_inpaint": False,
    "view_prompts": False,
}


def methods() -> list[Method]:
    return [
        Method("before", "orbit", BEFORE),
        Method("before+grid", "orbit", {**BEFORE, "grid_mode": True}),
        # Today's defaults: colour matching, facing^3, 3 px edge feather, unseen texels
        # filled across seams then inpainted in UV space, cameras placed by coverage.
        Method("new", "auto", {}),
        Method("new+orbit", "orbit", {}),
        Method("new+grid", "auto", {"grid_mode": True}),
    ]


def add_orbit_cameras(scene, objs, count: int):
    corners = np.array([o.matrix_world @ v.co for o in objs for v in o.data.vertices])
    center = (corners.min(axis=0) + corners.max(axis=0)) / 2
    radius = max(float(np.linalg.norm(corners - center, axis=1).max()), 1e-3)
    from mathutils import Vector

    cams = []
    for i, pos in enumerate(orbit_positions(center, radius * 2.5, count, 20.0)):
        cam = bpy.data.objects.new(f"Orbit {i}", bpy.data.cameras.new(f"Orbit {i}"))
        cam.location = Vector(pos)
        cam.rotation_euler = (Vector(center) - cam.location).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(cam)
        cams.append(cam)
    return cams


@dataclass
class Scores:
    scene: str
    method: str
    views: int
    jobs: int
    covered: float
    filled: float
    empty: float
    error: float
    fill_error: float
    seam_p99: float
    uv_seam: float
    seconds: float


def render(scene, targets, path: Path, size: int = 320) -> None:
    """The textured result from one fixed viewpoint (front-left, above), Cycles on the CPU,
    a sun and a grey world, so the reader sees coverage, fills and seams."""
    corners = np.array([o.matrix_world @ v.co for o in targets for v in o.data.vertices])
    center = (corners.min(axis=0) + corners.max(axis=0)) / 2
    radius = float(np.linalg.norm(corners - center, axis=1).max())
    from mathutils import Vector

    cam = bpy.data.objects.new("Render", bpy.data.cameras.new("Render"))
    cam.location = Vector(center) + Vector((-1.6, -2.4, 1.4)) * radius * 1.25
    cam.rotation_euler = (Vector(center) - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(cam)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.7, 0.2, -0.6)
    sun.data.energy = 3.0
    scene.collection.objects.link(sun)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.35, 0.35, 0.35)
    scene.camera = cam
    r = scene.render
    r.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    r.resolution_x = r.resolution_y = size
    r.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def run(
    scene_name: str,
    method: Method,
    size: int,
    tex: int,
    views: int,
    seed: int,
    renders: Path | None = None,
) -> Scores:
    scene, targets = SCENES[scene_name]()
    props = scene.dreamwire
    props.prompt = "painted"
    props.width = props.height = size
    props.texture_size = tex
    props.output_dir = tempfile.mkdtemp(prefix="dw-bench-tex-")
    r = scene.render
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    for name, _ in props.controls():
        getattr(props, name).enabled = False
    for key, value in method.settings.items():
        if hasattr(props, key):
            setattr(props, key, value)
    for o in scene.objects:
        o.select_set(o in targets)
    bpy.context.view_layer.objects.active = targets[0]
    if method.cameras == "orbit":
        cams = add_orbit_cameras(scene, targets, views)
    else:  # Multi-view's own placement by coverage (the list is empty)
        props.auto_cameras = True
        props.auto_camera_count = views + 2
        cams = actions.multiview_cameras(bpy.context)
    scene.camera = cams[0]

    from blender_addon.capture import camera_model

    depsgraph = bpy.context.evaluated_depsgraph_get()
    all_tris = bpy_data.scene_triangles(scene, depsgraph)
    rng = np.random.default_rng(seed)
    states.clear()
    t0 = time.perf_counter()
    gen, _ = actions.project(bpy.context, cameras=cams)
    result = None
    jobs = 0
    try:
        while True:
            job = gen.send(result)
            jobs += 1
            tag = job.tag or ""
            # One drift per generated image: views generated separately drift apart, the
            # cells of one grid image are painted together and share it.
            drift = (1.0 + rng.uniform(-0.12, 0.12, 3), rng.uniform(-12, 12, 3))
            if job.init_image is not None and job.mask is not None and tag.startswith("fill"):
                # A UV inpaint pass: the stand-in paints nothing new (its job is coverage).
                img = job.init_image[..., :3]
            elif tag.startswith("project grid "):
                names = tag.removeprefix("project grid ").split(", ")
                grid = view_grid.plan_grid(len(cams), (size, size), props.grid_layout)
                cells = [
                    stand_in_image(
                        projection.camera_from_model(
                            camera_model(
                                scene, bpy.data.objects[n], grid.cell_width, grid.cell_height
                            )
                        ),
                        all_tris,
                        drift,
                    )
                    for n in names
                ]
                img = view_grid.tile(cells, grid, fill=128)
            else:
                cam_obj = bpy.data.objects.get(tag.removeprefix("project ")) or scene.camera
                cam = projection.camera_from_model(
                    camera_model(scene, cam_obj, job.width, job.height)
                )
                img = stand_in_image(cam, all_tris, drift)
            if job.mask is not None and job.init_image is not None and not tag.startswith("fill"):
                # The backend composites an inpaint: outside the mask the picture is the
                # init image (the texture so far seen from the camera) unchanged.
                keep = np.asarray(job.mask)[..., None] < 128
                img = np.where(keep, np.asarray(job.init_image)[..., :3], img).astype(np.uint8)
            result = _Result([_Image(img)])
    except StopIteration:
        pass
    seconds = time.perf_counter() - t0
    scores = score(scene_name, method, targets, tex, jobs, len(cams), seconds, props.output_dir)
    if renders is not None:
        render(scene, targets, renders / f"{scene_name}-{method.name.replace('+', '-')}.png")
    return scores


# Which texels the views covered, per target in projection order: the fill's own verdict,
# taken as actions.project computes it (the coverage JSON holds only the shares).
states: list[np.ndarray] = []
_fill_unseen = actions.fill_unseen


def _recording_fill(*args, **kwargs):
    fill = _fill_unseen(*args, **kwargs)
    states.append(fill.state.copy())
    return fill


actions.fill_unseen = _recording_fill


def _steps(got: np.ndarray, want: np.ndarray, a, b) -> np.ndarray:
    """How much more colour changes from texel a to texel b in the result than in the
    right answer (0 where the result changes less)."""
    step_got = np.linalg.norm(srgb_to_lab(got[a]) - srgb_to_lab(got[b]), axis=1)
    step_want = np.linalg.norm(srgb_to_lab(want[a]) - srgb_to_lab(want[b]), axis=1)
    return np.maximum(step_got - step_want, 0.0)


def score(scene_name, method, targets, tex, jobs, views, seconds, out_dir) -> Scores:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    inside = 0
    err = {"covered": [0.0, 0], "filled": [0.0, 0]}
    shares = {"covered": 0.0, "filled": 0.0, "empty": 0.0}
    steps, seam_steps = [], []
    for i, obj in enumerate(targets):
        img = bpy.data.images.get(f"Dreamwire {obj.name}")
        m = bpy_data.mesh_triangles(obj, depsgraph)
        surf = projection.texel_surface(m.uvs, m.world, m.normals, (tex, tex))
        n = int(surf.mask.sum())
        inside += n
        report = Path(out_dir) / f"{bpy.path.clean_name(obj.name)}_coverage.json"
        if report.exists():
            r = json.loads(report.read_text())
            for k in shares:
                shares[k] += r[k] * n
        else:
            shares["empty"] += n
        if img is None:
            continue
        w, h = img.size
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        got = np.rint(px.reshape(h, w, 4)[::-1] * 255)[surf.mask]
        ok = got[:, 3] > 0
        covered = states[i] == texel_fill.TexelState.COVERED
        want = truth(surf.positions)
        d = np.linalg.norm(srgb_to_lab(got[:, :3]) - srgb_to_lab(want), axis=1)
        for key, sel in (("covered", covered & ok), ("filled", ~covered & ok)):
            err[key][0] += float(d[sel].sum())
            err[key][1] += int(sel.sum())
        # Neighbouring texels (right and below) inside the islands, numbered as the mask's.
        index = np.full(surf.mask.shape, -1)
        index[surf.mask] = np.arange(n)
        for a_sl, b_sl in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
            a, b = index[a_sl].ravel(), index[b_sl].ravel()
            keep = (a >= 0) & (b >= 0)
            a, b = a[keep], b[keep]
            keep = covered[a] & covered[b] & ok[a] & ok[b]
            steps.append(_steps(got[:, :3], want, a[keep], b[keep]))
        # Texel pairs facing each other across the UV seams (the fill's seam links).
        graph = texel_fill.texel_graph(m.uvs, m.world, (tex, tex))
        a = np.repeat(np.arange(n), np.diff(graph.seam_indptr))
        b = graph.seam_nbr
        keep = covered[a] & covered[b] & ok[a] & ok[b]
        seam_steps.append(_steps(got[:, :3], want, a[keep], b[keep]))
    allsteps = np.concatenate(steps) if steps else np.zeros(1)
    seams = np.concatenate(seam_steps) if seam_steps else np.zeros(0)
    return Scores(
        scene=scene_name,
        method=method.name,
        views=views,
        jobs=jobs,
        covered=round(shares["covered"] / max(inside, 1), 4),
        filled=round(shares["filled"] / max(inside, 1), 4),
        empty=round(shares["empty"] / max(inside, 1), 4),
        error=round(err["covered"][0] / max(err["covered"][1], 1), 2),
        fill_error=round(err["filled"][0] / max(err["filled"][1], 1), 2),
        # The worst 1% of neighbour steps: seams are rare pixels, a mean would hide them.
        seam_p99=round(float(np.percentile(allsteps, 99)), 2),
        uv_seam=round(float(seams.mean()), 2) if seams.size else 0.0,
        seconds=round(seconds, 2),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--texture", type=int, default=256)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scenes", nargs="*", default=list(SCENES))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--renders", type=Path, help="write a Cycles render of each result here")
    args = ap.parse_args(argv)
    if args.renders:
        args.renders.mkdir(parents=True, exist_ok=True)
    blender_addon.register()
    rows = []
    for scene_name in args.scenes:
        for method in methods():
            s = run(
                scene_name, method, args.size, args.texture, args.views, args.seed, args.renders
            )
            rows.append(s)
            print(json.dumps(asdict(s)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
