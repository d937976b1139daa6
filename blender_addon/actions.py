"""The actions as generators driven by core.tasks.Driver: each `yield job` hands a
Job to the backend and resumes with its JobResult. Scene data is looked up by name after
every yield, since the artist may have changed things while the backend worked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from dataclasses import replace

import bpy
import numpy as np

from dreamwire.shared.animatediff import AnimateDiff, FrameControl
from dreamwire.shared.animation import batch as frame_batch
from dreamwire.shared.animation import independent, sequence
from dreamwire.shared.animation.sequence import (
    MOTION_MODES,
    Mode,
    RequestGroup,
    SequenceSettings,
)
from dreamwire.shared.family_support import model_info
from dreamwire.shared.fanout import FanOut, worker_limit
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.panel_job import distilled_cfg, guidance_options
from dreamwire.shared.result import JobResult

from . import bpy_data, connection
from .animation_frames import BlenderFrames
from .core import animation as anim
from .core.edit import build_edit_job, edited_name
from .core.job_builder import (
    CONTROL_TYPES,
    GenerationSettings,
    build_job,
    fit_to_backend,
    reference_rgb,
    round_size,
    two_pass_note,
)
from .core.layers import build_layers_job, layer_name, stack
from .core.tasks import ActionError
from .core.texturing.color_match import MatchSettings, match_view
from .core.texturing.coverage_report import CoverageReport
from .core.texturing.multiview import SurfaceMesh, TextureAccumulator, plan_view
from .core.texturing.object_prompts import pixel_owners, view_regions
from .core.texturing.pbr_maps import (
    NON_COLOR,
    NORMAL,
    MapBaker,
    crop_maps,
    maps_of,
    materials_job,
    missing_maps,
    normals_to_object,
    seamless_padding,
    wanted_maps,
)
from .core.texturing.projection import (
    BakeSettings,
    camera_from_model,
    sample_view,
    texel_surface,
    view_depth_buffer,
)
from .core.texturing.texel_fill import fill_unseen, texel_graph, texture_image
from .core.texturing.uv_inpaint import apply_uv_inpaint, uv_inpaint_request
from .core.texturing.view_grid import GridLayout, plan_grid, tile, untile
from .core.texturing.view_prompts import WORLD_FRAME, object_frame, view_prompt
from .core.upscale import (
    SEAMLESS_PROP,
    SUFFIX,
    build_upscale_job,
    result_pixels,
    seamless_for,
    seamless_record,
    upscaled_name,
)

CAPTURE_KINDS = {
    "depth": "depth",
    "normals": "normals",
    "pose": "pose",
    "face": "face",
    "segmentation": "segmentation",
    "colour": "color",
}


def _settings(scene, reference: bool = True) -> GenerationSettings:
    """The panel's settings; with `reference`, the reference image's pixels read now (the
    artist may paint on it while the action runs; every job keeps the same picture)."""
    s = scene.dreamwire.to_settings()
    s.info = model_info(s.model, connection.welcome())
    img = scene.dreamwire.reference_image
    if reference and s.reference.enabled and img is not None:
        try:
            s.reference.pixels = reference_rgb(bpy_data.image_to_array(img))
        except ValueError:
            raise ActionError(
                f"The reference image '{img.name}' has no pixels (is its file missing?)."
            ) from None
    return s


def _fit(s: GenerationSettings) -> str:
    """Leave out what the backend cannot run for the model (it has welcomed us by the
    time an action runs); the note, with a leading space, for the action's message."""
    note = fit_to_backend(s, connection.welcome())
    if note:
        print(f"Dreamwire: {note}")
    return f" {note}" if note else ""


def _done(message: str, note: str) -> str:
    return f"{message}.{note}" if note else message


def _get_object(name: str):
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise ActionError(f"'{name}' was deleted while the backend was working")
    return obj


def _image(result) -> np.ndarray:
    if not result.images:
        raise ActionError("The backend returned no image")
    img = result.images[0].image
    return img[..., :3] if img.shape[2] >= 3 else np.repeat(img, 3, axis=2)


def capture_controls(scene, camera, settings: GenerationSettings, width: int, height: int) -> dict:
    """The enabled controls as images, captured from `camera` and shown in Blender."""
    from .capture import CaptureError, capture_all, capture_pose, store_image

    wanted = [c.name for c in settings.enabled_controls()]
    if not wanted:
        return {}
    overrides = scene.dreamwire.bone_overrides()
    # Per-bone overrides go to the pose capture itself; the rest render together.
    separate_pose = "pose" in wanted and bool(overrides)
    kinds = [CAPTURE_KINDS[n] for n in wanted if not (separate_pose and n == "pose")]
    try:
        caps = capture_all(scene, camera, width, height, kinds=kinds) if kinds else {}
        if separate_pose:
            caps["pose"] = capture_pose(scene, camera, width, height, overrides=overrides)[1]
    except CaptureError as exc:
        raise ActionError(str(exc)) from None
    out = {}
    for name in wanted:
        img = caps.get(CAPTURE_KINDS[name])
        if img is not None:
            out[name] = img
            store_image(f"Dreamwire {name}", img, non_color=name != "colour")
    return out


def _camera(scene, camera=None):
    cam = camera if camera is not None else scene.camera
    if cam is None:
        raise ActionError("The scene has no camera: add one and make it the scene camera.")
    if cam.type != "CAMERA":
        raise ActionError(f"'{cam.name}' is not a camera.")
    return cam


def _targets(context) -> list[str]:
    names = [o.name for o in context.selected_objects if o.type == "MESH"]
    if not names:
        raise ActionError("Select the mesh objects to project onto.")
    return names


def _job_size(settings: GenerationSettings, scene) -> tuple[int, int]:
    from .core.job_builder import round_size

    return round_size(settings.width), round_size(settings.height)


# -- Generate texture ----------------------------------------------------------------
def generate_texture(context):
    scene = context.scene
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise ActionError("Make a mesh object active to give it a texture.")
    if not len(obj.data.uv_layers):
        raise ActionError(
            f"'{obj.name}' has no UV map: unwrap it first (or use Project, which creates one)."
        )
    name = obj.name
    s = _settings(scene)
    if not s.prompt.strip():
        raise ActionError("Write a prompt first.")
    out_dir_prop = scene.dreamwire.output_dir
    props = scene.dreamwire
    pbr = _pbr_maps(props)

    def run():
        note = _fit(s)
        job = build_job(s, {}, tag=f"texture {name}")
        result = yield job
        texture = _image(result)
        maps = {}
        if pbr:
            # A tiling texture's maps tile too: Marigold sees it wrapped around its edges.
            padded, offset = seamless_padding(texture, job.seamless)
            seed = result.images[0].seed
            maps_result = yield materials_job(padded, pbr, seed, f"maps {name}")
            h, w = texture.shape[:2]
            maps = crop_maps(maps_of(maps_result), offset, (w, h))
        target = _get_object(name)
        rb = bpy_data.Rollback()
        try:
            img = bpy_data.image_from_array(f"Dreamwire {name}", texture, rb)
            _record_seamless(img, job.seamless)  # Upscale keeps a tiling texture tiling
            folder = bpy_data.output_dir(out_dir_prop)
            bpy_data.save_png(img, folder, f"{bpy.path.clean_name(name)}_texture.png")
            uv = bpy_data.active_render_uv(target.data).name
            bpy_data.apply_texture(target, img, uv, rb)
            if maps:
                # A UV texture seen head-on: Marigold's camera frame is the texture's tangent
                # frame (x along u, y along v, z out of the surface).
                _apply_maps(target, maps, uv, folder, rb, normal_space="TANGENT")
            rb.commit()
        finally:
            rb.rollback()
        return _done(f"Texture applied to {name}", note + two_pass_note(job))

    return run(), 2 if pbr else 1


def _pbr_maps(props) -> list[str]:
    """The PBR maps the panel asks for, refused at once when the backend makes none of them."""
    pbr = wanted_maps(props.pbr_normal) if props.pbr_maps else []
    if pbr and (lacking := missing_maps(pbr, connection.welcome())):
        raise ActionError(lacking)
    return pbr


def _record_seamless(img, axes: str) -> None:
    record = seamless_record(axes)
    if record is not None:
        img[SEAMLESS_PROP] = record
    elif SEAMLESS_PROP in img:
        del img[SEAMLESS_PROP]


# -- Upscale an image ----------------------------------------------------------------------
def _node_image(obj):
    """The image of the texture node Dreamwire made on the object's active material."""
    mat = getattr(obj, "active_material", None)
    if mat is None or mat.node_tree is None:
        return None, None
    for node in mat.node_tree.nodes:
        if node.type == "TEX_IMAGE" and node.label == bpy_data.NODE_LABEL and node.image:
            return node.image, mat
    return None, None


def _upscale_source(context, image_name: str):
    """(image, material whose Dreamwire node shows it, or None): the named image, else
    the Image Editor's, else the active object's Dreamwire texture."""
    node_img, mat = _node_image(context.active_object)
    space = getattr(context, "space_data", None)
    if image_name:
        img = bpy.data.images.get(image_name)
        if img is None:
            raise ActionError(f"There is no image named '{image_name}'.")
    elif space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        img = space.image
    elif node_img is not None:
        img = node_img
    else:
        raise ActionError(
            "Open an image in the Image Editor, or make active an object with a "
            "Dreamwire texture (Generate Texture), to upscale it."
        )
    return img, (mat if node_img == img else None)


def upscale_image(context, image_name: str = ""):
    scene = context.scene
    img, mat = _upscale_source(context, image_name)
    if img.size[0] < 1 or img.size[1] < 1:
        raise ActionError(f"'{img.name}' has no pixels to upscale (is its file missing?).")
    u = scene.dreamwire.to_upscale_settings()
    seamless = seamless_for(u.seamless, img.get(SEAMLESS_PROP))
    source = bpy_data.image_to_array(img)
    name, mat_name = img.name, mat.name if mat is not None else None
    s = _settings(scene, reference=False)
    job = build_upscale_job(source, u, s, seamless, tag=f"upscale {name}")
    out_dir_prop = scene.dreamwire.output_dir

    def run():
        result = yield job
        pixels = result_pixels(source, _image(result), seamless)
        rb = bpy_data.Rollback()
        try:
            new = _put_image(upscaled_name(name), pixels, rb)
            _record_seamless(new, seamless)
            folder = bpy_data.output_dir(out_dir_prop)
            stem = bpy.path.clean_name(upscaled_name(name)[: -len(SUFFIX)])
            bpy_data.save_png(new, folder, f"{stem}_upscaled.png")
            # Every image editor shows the result, except pinned ones (as Dream Textures).
            for win in getattr(context.window_manager, "windows", []):
                for area in win.screen.areas:
                    space = area.spaces.active
                    if area.type == "IMAGE_EDITOR" and not space.use_image_pin:
                        space.image = new
            material = bpy.data.materials.get(mat_name) if mat_name else None
            for node in material.node_tree.nodes if material is not None else ():
                if node.type == "TEX_IMAGE" and node.label == bpy_data.NODE_LABEL:
                    node.image = new
            rb.commit()
        finally:
            rb.rollback()
        w, h = new.size
        return f"Upscaled {name} to {w}x{h}: {new.name}"

    return run(), 1


def _edit_source(context):
    """(image, (material name, node name) of the image texture node showing it, or None):
    the active material's active image texture node, else the node Dreamwire made on it,
    else the Image Editor's image."""
    mat = getattr(context.active_object, "active_material", None)
    tree = mat.node_tree if mat is not None else None
    nodes = list(tree.nodes) if tree is not None else []
    active = tree.nodes.active if tree is not None else None
    ours = [n for n in nodes if n.type == "TEX_IMAGE" and n.label == bpy_data.NODE_LABEL]
    for node in ([active] if active is not None else []) + ours:
        if node.type == "TEX_IMAGE" and node.image is not None:
            return node.image, (mat.name, node.name)
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image, None
    raise ActionError(
        "Make active an object whose material has an image texture (or open an image in "
        "the Image Editor) to edit it."
    )


def _texture_input(context, verb: str):
    """(image, where its node is, its pixels, the panel's settings) for an edit or a
    split of the active texture."""
    img, where = _edit_source(context)
    if img.size[0] < 1 or img.size[1] < 1:
        raise ActionError(f"'{img.name}' has no pixels to {verb} (is its file missing?).")
    s = _settings(context.scene, reference=False)
    return img, where, bpy_data.image_to_array(img), s


def edit_texture(context):
    """Edit the active material's image texture as the prompt instructs (an edit model:
    Flux Kontext) into a new image "<name> (Edited)", which the node then shows."""
    img, where, pixels, s = _texture_input(context, "edit")
    name = img.name
    job = build_edit_job(pixels, s, connection.welcome(), f"edit {name}")
    out_dir_prop = context.scene.dreamwire.output_dir

    def run():
        result = yield job
        rgb = _image(result)
        pixels = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        rb = bpy_data.Rollback()
        try:
            new = _put_image(edited_name(name), pixels, rb)
            stem = bpy.path.clean_name(name)
            bpy_data.save_png(new, bpy_data.output_dir(out_dir_prop), f"{stem}_edited.png")
            # Looked up again by name: the artist may have deleted it meanwhile.
            mat = bpy.data.materials.get(where[0]) if where else None
            node = mat.node_tree.nodes.get(where[1]) if mat and mat.node_tree else None
            if node is not None:
                node.image = new
            rb.commit()
        finally:
            rb.rollback()
        return f"Edited {name}: {new.name}"

    return run(), 1


def split_layers(context, count: int = 4):
    """Split the active material's image texture into RGBA layers (a layered model:
    Qwen-Image-Layered): images "<name> layer i/N" with alpha, 1 the bottom."""
    img, _, pixels, s = _texture_input(context, "split")
    name = img.name
    job = build_layers_job(pixels, s, connection.welcome(), count, f"layers {name}")
    out_dir_prop = context.scene.dreamwire.output_dir

    def run():
        result = yield job
        layers = stack(result)
        rb = bpy_data.Rollback()
        try:
            stem = bpy.path.clean_name(name)
            made = []
            for index, rgba in layers:
                new = _put_image(layer_name(name, index, len(layers)), rgba, rb)
                new.alpha_mode = "STRAIGHT"  # the layers' alpha is their own
                out = bpy_data.output_dir(out_dir_prop)
                bpy_data.save_png(new, out, f"{stem}_layer{index + 1}.png")
                made.append(new.name)
            rb.commit()
        finally:
            rb.rollback()
        return f"Split {name} into {len(made)} layers: {', '.join(made)}"

    return run(), 1


def _put_image(name: str, pixels: np.ndarray, rb):
    """A new image, or the one of that name resized in place (so what uses it follows)."""
    img = bpy.data.images.get(name)
    if img is None:
        return bpy_data.image_from_array(name, pixels, rb)
    h, w = pixels.shape[:2]
    if tuple(img.size) != (w, h):
        img.scale(w, h)
    f = pixels.astype(np.float32) / 255.0
    img.pixels.foreach_set(np.ascontiguousarray(f[::-1]).ravel())
    img.update()
    return img


# -- Project (one camera) and Multi-view projection --------------------------------------
def _bake_settings(scene) -> BakeSettings:
    p = scene.dreamwire
    g = p.grazing_angle
    return BakeSettings(
        grazing_deg=g,
        full_deg=max(0.0, g - 30.0),
        facing_power=p.facing_exponent,
        edge_feather_px=p.edge_feather,
    )


def project(context, cameras=None):
    """Generate from each camera in turn and bake into the selected meshes' UV textures.
    With several cameras, each later view inpaints what the earlier ones did not cover."""
    from .capture import camera_model

    scene = context.scene
    cams = [c.name for c in (cameras or [_camera(scene)])]
    for c in cams:
        _camera(scene, bpy.data.objects[c])
    targets = _targets(context)
    s = _settings(scene)
    if not s.prompt.strip():
        raise ActionError("Write a prompt first.")
    props = scene.dreamwire
    create_uvs = props.create_uvs
    if not create_uvs:
        for n in targets:
            if not len(bpy.data.objects[n].data.uv_layers):
                raise ActionError(
                    f"'{n}' has no UV map: unwrap it, or turn on 'Create missing UVs'."
                )
    tex_size = (props.texture_size, props.texture_size)
    bake = _bake_settings(scene)
    threshold = props.coverage_threshold
    mv_strength = props.multiview_strength
    match_colours = props.colour_match
    match_settings = MatchSettings(method=props.colour_match_method)
    fill_distance, fill_inpaint = props.fill_distance, props.fill_inpaint
    out_dir_prop = props.output_dir
    pbr = _pbr_maps(props)
    width, height = _job_size(s, scene)
    # Grid mode: several views per generation (one camera has nothing to share a grid with).
    grid = plan_grid(len(cams), (width, height), props.grid_layout)
    grid = grid if props.grid_mode and len(cams) > 1 else None
    phrases = props.view_phrases()
    object_prompts = [bpy.data.objects[n].dreamwire_prompt for n in targets]
    # One object's own front (local -Y); several objects' fronts need not agree, so then
    # the world's (Blender's Front view).
    frame = (
        object_frame(np.array(bpy.data.objects[targets[0]].matrix_world))
        if len(targets) == 1
        else WORLD_FRAME
    )

    def run():
        note = _fit(s)
        rb = bpy_data.Rollback()
        try:
            depsgraph = context.evaluated_depsgraph_get()
            uv_names = {
                n: bpy_data.ensure_uvs(bpy.data.objects[n], rb, create_uvs) for n in targets
            }
            depsgraph.update()
            meshes, surfaces, accs = {}, {}, {}
            for n in targets:
                m = bpy_data.mesh_triangles(bpy.data.objects[n], depsgraph, uv_names[n])
                if m.uvs is None or len(m.world) == 0:
                    raise ActionError(f"'{n}' has no faces to project onto.")
                meshes[n] = m
                surfaces[n] = texel_surface(m.uvs, m.world, m.normals, tex_size)
                accs[n] = TextureAccumulator(surfaces[n].mask)
            baker = MapBaker({n: surfaces[n].mask for n in targets}, pbr) if pbr else None
            # Everything else visible can hide the targets from a camera.
            occluders = bpy_data.scene_triangles(scene, depsgraph, exclude=set(targets))
            all_tris = np.concatenate([occluders] + [meshes[n].world for n in targets])

            def owners(cam):
                """Which target each of `cam`'s pixels shows (-1: none), for the targets'
                own prompts; None when no target has one."""
                if not any(p.strip() for p in object_prompts):
                    return None
                counts = [len(meshes[n].world) for n in targets]
                return pixel_owners(view_depth_buffer(cam, all_tris).tri, len(occluders), counts)

            def plan_next(cam):
                """What `cam` sees of the texture so far, and the mask of what to make."""
                return plan_view(
                    cam,
                    [SurfaceMesh(meshes[n].world, meshes[n].uvs) for n in targets],
                    [accs[n].texture() for n in targets],
                    [accs[n].coverage_image() for n in targets],
                    occluders=occluders,
                    threshold=threshold,
                )

            def bake_view(cam, image, view_mask=None, match=True):
                """One generated view into every target's texture; `view_mask` is what the
                view generated (its inpaint mask; None: all of it), where colour matching
                fits and applies its correction. The cells of one grid image were painted
                together and are not matched to each other (`match` False)."""
                zbuf = view_depth_buffer(cam, all_tris).depth
                samples = [
                    sample_view(cam, image, surfaces[n].positions, surfaces[n].normals, zbuf, bake)
                    for n in targets
                ]
                if match_colours and match:  # the first view has no overlap: it stays as is
                    samples, _ = match_view(
                        [accs[n] for n in targets], samples, view_mask, match_settings
                    )
                for n, smp in zip(targets, samples, strict=True):
                    accs[n].add(smp)
                return dict(zip(targets, samples, strict=True))

            def view_maps(cam, image, result, samples, name):
                """PBR maps of one baked view, when asked for (yields a materials job)."""
                if baker is not None:
                    yield from _view_maps(baker, image, result, cam, samples, name)

            used = 0
            if grid is not None:
                used = yield from _project_grid(
                    scene, cams, grid, s, mv_strength, plan_next, bake_view, view_maps,
                    lambda views: _grid_regions(views, owners, object_prompts, grid),
                )  # fmt: skip
            for cam_name in cams if grid is None else ():
                cam_obj = _get_object(cam_name)
                model = camera_model(scene, cam_obj, width, height)
                cam = camera_from_model(model)
                controls = capture_controls(scene, cam_obj, s, width, height)
                view_mask = None  # what the view generates: all of it, or the inpaint mask
                vs = replace(s, prompt=view_prompt(s.prompt, cam.forward, frame, phrases))
                own = owners(cam)
                regions = view_regions(own, object_prompts) if own is not None else []
                if used == 0:
                    job = build_job(
                        vs,
                        controls,
                        size=(width, height),
                        tag=f"project {cam_name}",
                        regions=regions,
                    )
                else:
                    plan = plan_next(cam)
                    if plan.covered_fraction > 0.98:
                        continue  # this view adds nothing the others did not cover
                    view_mask = plan.mask
                    bpy_data.image_from_array("Dreamwire inpaint source", plan.init_image)
                    bpy_data.image_from_array("Dreamwire inpaint mask", plan.mask, non_color=True)
                    job = build_job(
                        vs,
                        controls,
                        init_image=plan.init_image,
                        mask=plan.mask,
                        strength=mv_strength,
                        size=(width, height),
                        tag=f"project {cam_name}",
                        regions=regions,
                    )
                result = yield job
                image = _image(result)
                bpy_data.image_from_array("Dreamwire view", image)
                used += 1
                samples = bake_view(cam, image, view_mask)
                yield from view_maps(cam, image, result, samples, cam_name)
            if not any(accs[n].weight_sum.max(initial=0) > 0 for n in targets):
                raise ActionError("No camera sees the selected meshes (check the camera's view).")
            filled = yield from _fill_unseen(
                s,
                targets,
                meshes,
                surfaces,
                accs,
                tex_size,
                fill_distance,
                fill_inpaint,
                mv_strength,
            )
            folder = bpy_data.output_dir(out_dir_prop)
            for n in targets:
                obj = _get_object(n)
                tex, report = filled[n]
                img = bpy_data.image_from_array(f"Dreamwire {n}", tex, rb)
                stem = bpy.path.clean_name(n)
                bpy_data.save_png(img, folder, f"{stem}_projected.png")
                with open(os.path.join(folder, f"{stem}_coverage.json"), "w") as f:
                    f.write(report.to_json())
                bpy_data.apply_texture(obj, img, uv_names[n], rb)
                if baker is not None:
                    _apply_maps(obj, baker.textures(n), uv_names[n], folder, rb)
            rb.commit()
        finally:
            rb.rollback()
        views = "view" if used == 1 else "views"
        reports = "; ".join(f"{n}: {filled[n][1].summary()}" for n in targets)
        return _done(f"Projected {used} {views} onto {', '.join(targets)} ({reports})", note)

    views = len(grid.batches(len(cams))) if grid is not None else len(cams)
    return run(), views + (len(cams) if pbr else 0) + (len(targets) if fill_inpaint else 0)


def _grid_regions(views, owners, prompts, grid: GridLayout) -> list:
    """The targets' own prompts over a grid image: each cell's pixel owners, tiled."""
    cells = [owners(cam) for cam in views]
    if any(c is None for c in cells):
        return []
    return view_regions(tile(cells, grid, fill=-1), prompts)


def _project_grid(
    scene, cams, grid: GridLayout, s, strength, plan_next, bake_view, view_maps, regions_of
):
    """Grid mode: the cameras' captures tiled into one image per job, generated together,
    split back and each part baked as the sequential mode bakes a view. Grids after the
    first inpaint, cell by cell, what the earlier ones left uncovered. Yields the jobs;
    returns how many views were baked."""
    from .capture import camera_model, store_image

    used = 0
    cw, ch = grid.cell_width, grid.cell_height
    for batch in grid.batches(len(cams)):
        names = [cams[i] for i in batch]
        views, captures = [], []
        for name in names:
            cam_obj = _get_object(name)
            views.append(camera_from_model(camera_model(scene, cam_obj, cw, ch)))
            captures.append(capture_controls(scene, cam_obj, s, cw, ch))
        kinds = dict.fromkeys(k for c in captures for k in c)  # every view's, in order
        controls = {k: tile([c.get(k) for c in captures], grid) for k in kinds}
        for k, img in controls.items():  # the artist sees what was sent
            store_image(f"Dreamwire {k}", img, non_color=k != "colour")
        tag = f"project grid {', '.join(names)}"
        plans = []  # the later grids' inpaint plans, one per cell
        regions = regions_of(views)
        if used == 0:
            job = build_job(s, controls, size=grid.size, tag=tag, regions=regions)
        else:
            plans = [plan_next(cam) for cam in views]
            init = tile([p.init_image for p in plans], grid, fill=128)
            mask = tile([p.mask for p in plans], grid)
            bpy_data.image_from_array("Dreamwire inpaint source", init)
            bpy_data.image_from_array("Dreamwire inpaint mask", mask, non_color=True)
            job = build_job(
                s,
                controls,
                init_image=init,
                mask=mask,
                strength=strength,
                size=grid.size,
                tag=tag,
                regions=regions,
            )
        result = yield job
        image = _image(result)
        bpy_data.image_from_array("Dreamwire view", image)
        try:
            parts = untile(image, grid, len(views))
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        masks = [p.mask for p in plans] or [None] * len(views)
        for name, cam, part, mask in zip(names, views, parts, masks, strict=True):
            samples = bake_view(cam, part, mask, match=bool(plans))
            yield from view_maps(cam, part, result, samples, name)
            used += 1
    return used


def _fill_unseen(
    s, targets, meshes, surfaces, accs, tex_size, distance, inpaint, strength
) -> Generator[FanOut[str], FanOut[str], dict[str, tuple[np.ndarray, CoverageReport]]]:
    """{target: (texture H x W x 4, CoverageReport)} after filling the texels no view saw
    from their neighbours on the mesh, then (`inpaint`) one UV inpaint job per target
    whose texture still has holes: the targets' jobs are independent, so they go out
    together, as many at once as the backend has workers (shared.fanout)."""
    size = (round_size(tex_size[0]), round_size(tex_size[1]))
    fills = {}
    for n in targets:
        graph = texel_graph(meshes[n].uvs, meshes[n].world, tex_size, surfaces[n].tri)
        fills[n] = (graph, fill_unseen(graph, accs[n].colors(), accs[n].weight_sum, distance))

    def job_for(n: str) -> Job:
        graph, fill = fills[n]
        tex = texture_image(graph.mask, fill)
        req = uv_inpaint_request(tex, graph.mask, fill, size)
        return build_job(
            s,
            {},
            init_image=req.init_image,
            mask=req.mask,
            strength=strength,
            seamless=False,
            size=size,
            tag=f"fill {n}",
        )

    def inpainted(n: str, result: JobResult) -> None:
        graph, fill = fills[n]
        fills[n] = (graph, apply_uv_inpaint(graph.mask, fill, _image(result)))

    holes = [n for n in targets if inpaint and fills[n][1].holes.any()]
    if holes:
        yield FanOut(holes, job_for, worker_limit(connection.welcome()), on_result=inpainted)
    return {
        n: (texture_image(graph.mask, fill), CoverageReport.from_states(fill.state))
        for n, (graph, fill) in fills.items()
    }


# -- PBR maps after projection (core/texturing/pbr_maps.py) ------------------------------
def _view_maps(baker: MapBaker, image, result, cam, samples: dict, cam_name: str):
    """Ask for one view's maps (yields a materials job) and bake them with its weights."""
    seed = result.images[0].seed if result.images else -1
    maps_result = yield materials_job(image, baker.maps, seed, f"maps {cam_name}")
    maps = maps_of(maps_result)
    for n, sample in samples.items():
        own = dict(maps)
        if NORMAL in own:
            matrix = np.array(_get_object(n).matrix_world, np.float64)
            own[NORMAL] = normals_to_object(own[NORMAL], cam.cam_to_world, matrix)
        baker.add(n, sample, own)


def _apply_maps(obj, textures: dict, uv_name: str, folder, rb, normal_space="OBJECT") -> None:
    """The baked maps as images ("Dreamwire <object> <map>", PNGs beside the colour's),
    albedo as the base colour and the others wired into the Principled BSDF."""
    images = {}
    for m, tex in textures.items():
        img = bpy_data.image_from_array(f"Dreamwire {obj.name} {m}", tex, rb, m in NON_COLOR)
        bpy_data.save_png(img, folder, f"{bpy.path.clean_name(obj.name)}_{m}.png")
        images[m] = img
    if "albedo" in images:
        mat = bpy_data.apply_texture(obj, images["albedo"], uv_name, rb)
    else:
        mat = obj.active_material
    bpy_data.apply_pbr_maps(mat, images, uv_name, rb, normal_space)


def multiview_cameras(context) -> list:
    props = context.scene.dreamwire
    cams = [item.camera for item in props.cameras if item.camera is not None]
    if not cams and props.auto_cameras:
        from .coverage_cameras import auto_cameras

        return auto_cameras(context, _targets(context))
    if not cams:
        cams = sorted(
            (o for o in context.scene.objects if o.type == "CAMERA"), key=lambda o: o.name
        )
    if not cams:
        raise ActionError(
            "Multi-view projection needs cameras: add some to the list or to the scene."
        )
    return cams


# -- Render animation ----------------------------------------------------------------
def _sequence_settings(scene) -> SequenceSettings:
    props = scene.dreamwire
    marked = tuple(m.frame for m in scene.timeline_markers) if props.key_markers else ()
    return sequence.settings(
        props.animation_mode,
        props.previous_strength,
        props.warp_denoise,
        props.mask_grow,
        props.key_every,
        marked,
        props.motion_module,
        props.context_length,
        props.context_stride,
    )


def _animatediff_run(scene, s, seq: SequenceSettings, plan, folder, size):
    """Every frame of the range in one animatediff job: each control captured on every
    frame (Blender's per-frame depth, pose ...), the frames stored where none is yet."""
    width, height = size
    note = _fit(s)
    if not plan.todo:  # a finished render: nothing to send
        return _done(f"All {len(plan.frames)} frames are already in {folder}", note)
    original = scene.frame_current
    frames = BlenderFrames(scene, folder, width, height)
    try:
        per_frame: dict[str, list] = {}
        for f in plan.frames:
            scene.frame_set(f)
            for name, img in capture_controls(scene, _camera(scene), s, width, height).items():
                per_frame.setdefault(name, []).append(img)
        controls = [
            FrameControl(c.model, per_frame[c.name], float(c.weight), CONTROL_TYPES[c.name])
            for c in s.enabled_controls()
            if len(per_frame.get(c.name, ())) == len(plan.frames)
        ]
        base = build_job(s, {}, seed=plan.seed, size=size, tag="animatediff")
        settings = AnimateDiff(
            seq.motion_module, len(plan.frames), seq.context_length, seq.context_stride, controls
        )
        job = replace(base, mode=JobMode.ANIMATEDIFF, controls=[], hires=None, animatediff=settings)
        result = yield job.validate()
        made = frame_batch.store(plan.frames, [g.image for g in result.images], frames)
    finally:
        frames.close()
        scene.frame_set(original)
    written = sum(r.source == "generated" for r in made)
    return _done(f"Rendered {written} frames to {folder} with AnimateDiff", note)


def _rendered(written: int, folder, skipped: int, note: str) -> str:
    extra = f", {skipped} already on disk" if skipped else ""
    return _done(f"Rendered {written} frames to {folder}{extra}", note)


def _independent_run(scene, s, plan, folder, size, job_for, controls_at):
    """Fixed seed: every frame a job of its own, as many at once as the backend has
    workers (shared.animation.independent); each saved as it comes, in order."""
    width, height = size

    def run():
        note = _fit(s)
        # Read once the driver has started the action: the backend has welcomed us by then.
        limit = worker_limit(connection.welcome())
        original = scene.frame_current
        frames = BlenderFrames(scene, folder, width, height)
        try:
            fan = independent.frames_fanout(
                plan.frames, frames, lambda req: job_for(req, controls_at(req.frame)), limit
            )
            yield fan
        finally:
            frames.close()
            scene.frame_set(original)
        return _rendered(frames.written, folder, len(fan.skipped), note)

    return run(), max(1, len(plan.todo))


def render_animation(context):
    scene = context.scene
    props = scene.dreamwire
    _camera(scene)
    s = _settings(scene)
    if not s.prompt.strip():
        raise ActionError("Write a prompt first.")
    width, height = _job_size(s, scene)
    folder = bpy_data.output_dir(props.output_dir)
    seq = _sequence_settings(scene)
    if seq.mode in MOTION_MODES and props.frame_step != 1:
        raise ActionError(
            "Warp and keyframe modes follow the motion frame by frame: set the frame step to 1."
        )
    fingerprint = {
        "prompt": s.prompt,
        "negative": s.negative,
        "model": s.model,
        "sampler": s.sampler,
        "steps": s.steps,
        "cfg": s.cfg,
        "size": [width, height],
        "from_previous": seq.mode is Mode.PREVIOUS,
        "strength": props.previous_strength,
        "controls": [(c.name, c.weight, c.start, c.end) for c in s.enabled_controls()],
    }
    # Motion modes only (other modes' renders keep their fingerprint): denoise, growth,
    # every occlusion setting (edge_share, the surface tests) and the keys.
    fingerprint.update(sequence.resume_fingerprint(seq))
    if seq.mode is Mode.ANIMATEDIFF:  # frames of another module or window are not this batch's
        if not seq.motion_module.strip():
            raise ActionError("AnimateDiff needs a motion module: name one in the panel.")
        if props.frame_step != 1:
            raise ActionError(
                "AnimateDiff makes every frame of the range: set the frame step to 1."
            )
        fingerprint["animatediff"] = [
            seq.motion_module,
            seq.context_length,
            seq.context_stride,
            scene.frame_start,
            scene.frame_end,
        ]
    distilled = distilled_cfg(s, s.info.family)
    if distilled is not None:  # only where it travels: older renders keep their fingerprint
        fingerprint["distilled_cfg"] = distilled
    # CFG rescale and SLG where they travel (on): older renders keep their fingerprint.
    fingerprint.update({k: v for k, v in guidance_options(s, s.info.supports).items() if v})
    ref = s.reference
    if ref.enabled and ref.pixels is not None:
        # Frames made with another reference picture are not this render's.
        digest = hashlib.sha1(np.ascontiguousarray(ref.pixels).tobytes()).hexdigest()[:16]
        fingerprint["reference"] = [digest, ref.weight, ref.start, ref.end]
        if ref.mode != "reference":  # renders made before modes existed keep theirs
            fingerprint["reference"].append(ref.mode)
    try:
        plan = anim.plan(
            folder,
            scene.frame_start,
            scene.frame_end,
            props.frame_step,
            s.seed,
            fingerprint,
            overwrite=props.overwrite,
        )
    except anim.AnimationError as exc:
        raise ActionError(str(exc)) from None

    def job_for(request, controls) -> Job:
        job = build_job(
            s,
            controls,
            init_image=request.init,
            mask=request.mask,
            strength=request.strength,
            seed=plan.seed,
            size=(width, height),
            tag=f"frame {request.frame}",
        )
        return replace(job, mask_blur=0) if request.mask is not None else job

    if seq.mode is Mode.ANIMATEDIFF:
        return _animatediff_run(scene, s, seq, plan, folder, (width, height)), 1

    def controls_at(frame: int) -> dict:
        scene.frame_set(frame)
        return capture_controls(scene, _camera(scene), s, width, height)

    if seq.mode is Mode.FIXED_SEED:
        return _independent_run(scene, s, plan, folder, (width, height), job_for, controls_at)

    def run():
        note = _fit(s)
        original = scene.frame_current
        frames = BlenderFrames(scene, folder, width, height)
        # Keyframes: the in-betweens of two finished keys come as one group, sent side by
        # side (as many at once as the backend has workers) and saved in frame order.
        steps = sequence.run(plan.frames, seq, frames, groups=True)
        controls_of = (None, {})
        try:
            request = next(steps)
            while True:
                if isinstance(request, RequestGroup):
                    limit = worker_limit(connection.welcome())
                    yield independent.group_fanout(
                        request, lambda req: job_for(req, controls_at(req.frame)), limit
                    )
                    request = steps.send(None)
                    continue
                if controls_of[0] != request.frame:
                    controls_of = (request.frame, controls_at(request.frame))
                result = yield job_for(request, controls_of[1])
                request = steps.send(_image(result))
        except StopIteration:
            pass
        finally:
            frames.close()
            scene.frame_set(original)
        return _rendered(frames.written, folder, len(plan.done), note)

    jobs = len(plan.todo) * (2 if seq.mode in MOTION_MODES else 1)
    return run(), max(1, jobs)
