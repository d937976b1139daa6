"""The bpy capture adapter (see __init__ for the API). Reads scene data, renders once with
Cycles on the CPU (only the passes the requested controls need), reads the passes back
from a multilayer EXR, and leaves the scene as it found it.

Speed (issue 5: under a second at 1024x1024 on a laptop CPU): the render is most of it;
around it the EXR goes to RAM where the OS offers it (/dev/shm) and is read as strided
views of a memory map (core.exr), and the conversions to control images are table
lookups and cache-sized blocks (core.segmentation.label_table, core.normals).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import bpy
import numpy as np

from dreamwire.shared.animation.motion import FrameMotion, from_blender_vector
from dreamwire.shared.imaging import ade20k
from dreamwire.shared.imaging import depth as depth_conv
from dreamwire.shared.imaging import normals as normal_conv
from dreamwire.shared.imaging.openpose import PoseFrame, draw_bodypose, to_openpose_json

from ..core import face as face_core
from ..core import normals as normals_core
from ..core import pose as pose_core
from ..core import segmentation as seg_core
from ..core.camera import CameraModel
from ..core.exr import layer_pass, read_exr

# Pass names changed in Blender 5.0 ("IndexOB" -> "Object Index").
_PASS_NAMES = {
    "depth": ("Depth", "Z"),
    "normal": ("Normal",),
    "object_index": ("Object Index", "IndexOB"),
    "material_index": ("Material Index", "IndexMA"),
    "combined": ("Combined", "Image"),
    "vector": ("Vector",),
}
_BACKGROUND_Z = 1e9
CAPTURE_SLOT = "Dreamwire capture"
DATA_KINDS = ("depth", "normals", "segmentation")
PASS_KINDS = (*DATA_KINDS, "motion")  # motion only when asked for: it costs a pass


class CaptureError(Exception):
    """Something in the scene stops the capture; the message says what, for the artist."""


@dataclass
class RenderPasses:
    """One render's passes. The normal and index passes are None when the render was
    asked only for kinds that do not need them (render_passes' `kinds`)."""

    camera: CameraModel
    z: np.ndarray  # H x W float32, view depth; inf where nothing was hit
    normal_world: np.ndarray | None  # H x W x 3 float32
    object_index: np.ndarray | None  # H x W int32, 0 = background
    material_index: np.ndarray | None  # H x W int32, 0 = none
    objects: dict[int, str]  # object pass index -> object name
    materials: dict[int, str]  # material pass index -> material name
    color: np.ndarray | None = None  # H x W x 3 uint8, with the scene's view transform
    # Blender's Vector pass (H x W x 4: X, Y, Z, W), with kinds "motion" only; see
    # dreamwire.shared.animation.motion for its conventions.
    vector: np.ndarray | None = None
    # The objects and materials themselves, by pass index: looking thousands of them up
    # by name again would take seconds (name lookups in bpy are linear).
    object_ids: dict[int, object] = field(default_factory=dict, repr=False)
    material_ids: dict[int, object] = field(default_factory=dict, repr=False)

    @property
    def geometry(self) -> np.ndarray:
        return np.isfinite(self.z)


# --- helpers -------------------------------------------------------------------------


class _Temp:
    """Set attributes for the duration of a capture and put them all back afterwards."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def set(self, owner, attr: str, value) -> None:
        if not hasattr(owner, attr):
            return
        old = getattr(owner, attr)
        if old != value:
            self._undo.append((owner, attr, old))
            setattr(owner, attr, value)

    def restore(self) -> None:
        for owner, attr, old in reversed(self._undo):
            with contextlib.suppress(AttributeError, TypeError, ValueError, ReferenceError):
                setattr(owner, attr, old)
        self._undo.clear()


def _camera(scene, camera):
    cam = camera if camera is not None else scene.camera
    if cam is None:
        raise CaptureError("The scene has no camera: add one or make one the active camera.")
    if cam.type != "CAMERA":
        raise CaptureError(f"'{cam.name}' is not a camera.")
    if cam.data.type == "PANO":
        raise CaptureError(f"Camera '{cam.name}' is panoramic; use a perspective or ortho camera.")
    # matrix_world is only recomputed when the depsgraph is evaluated: a camera moved by a
    # script a moment ago would otherwise be read at its old place (the render itself sees
    # the new one, so normals and poses would silently disagree with depth).
    _evaluate(scene)
    return cam


def _evaluate(scene) -> None:
    layer = bpy.context.view_layer
    if layer is None or layer not in list(scene.view_layers):
        layer = scene.view_layers[0]
    layer.update()


def _size(scene, width, height) -> tuple[int, int]:
    r = scene.render
    pct = r.resolution_percentage / 100.0
    w = int(width) if width else max(1, int(r.resolution_x * pct))
    h = int(height) if height else max(1, int(r.resolution_y * pct))
    if w <= 0 or h <= 0:
        raise CaptureError("Capture size must be positive.")
    return w, h


def camera_model(scene, camera=None, width=None, height=None) -> CameraModel:
    """The camera's projection as plain data (width/height default to the render size)."""
    cam = _camera(scene, camera)
    w, h = _size(scene, width, height)
    d = cam.data
    return CameraModel(
        matrix_world=np.array(cam.matrix_world, dtype=np.float64),
        width=w,
        height=h,
        ortho=d.type == "ORTHO",
        lens=d.lens,
        sensor_width=d.sensor_width,
        sensor_height=d.sensor_height,
        sensor_fit=d.sensor_fit,
        ortho_scale=d.ortho_scale,
        shift_x=d.shift_x,
        shift_y=d.shift_y,
        pixel_aspect_x=scene.render.pixel_aspect_x,
        pixel_aspect_y=scene.render.pixel_aspect_y,
        clip_start=d.clip_start,
        clip_end=d.clip_end,
    )


def _view_layer(scene):
    vl = getattr(bpy.context, "view_layer", None)
    if vl is not None and scene.view_layers.get(vl.name) == vl:
        return vl
    return scene.view_layers[0]


def _find_pass(channels, key: str, layer: str):
    for name in _PASS_NAMES[key]:
        arr = layer_pass(channels, name, layer)
        if arr is not None:
            return arr
    return None


def _set_exr(settings) -> None:
    if hasattr(settings, "media_type"):  # Blender 5.0+
        settings.media_type = "MULTI_LAYER_IMAGE"
    else:
        settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.exr_codec = "NONE"
    settings.color_depth = "32"


def _set_png(settings) -> None:
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "8"
    settings.compression = 0  # lossless either way; written only to be read straight back


def _image_settings_state(settings) -> dict:
    keys = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec", "compression")
    return {k: getattr(settings, k) for k in keys if hasattr(settings, k)}


def _restore_image_settings(settings, state: dict) -> None:
    for k in ("media_type", "file_format", "color_mode", "color_depth", "exr_codec", "compression"):
        if k in state:
            with contextlib.suppress(TypeError, ValueError):
                setattr(settings, k, state[k])


def _read_png(path: str) -> np.ndarray:
    img = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
    finally:
        bpy.data.images.remove(img)
    rgb = px.reshape(h, w, 4)[::-1, :, :3]
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _temp_parent(nbytes: int) -> str | None:
    """A RAM-backed folder for the pass file where there is one (Linux) with room for it
    twice over (containers often get a 64 MiB /dev/shm): the EXR is written and read
    straight away, so it need never reach a disk. None: the system's temp folder."""
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
            st = os.statvfs(shm)
            if st.f_bavail * st.f_frsize > 2 * nbytes:
                return shm
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    return None


def _wanted_channels(layer: str, keys: Iterable[str]):
    """Predicate on multilayer channel names ('Layer.Pass.Channel') for the passes the
    capture reads, so the reader skips the rest (Combined is always in the file)."""
    prefix = layer + "."
    passes = {name for key in keys for name in _PASS_NAMES[key]}

    def wanted(name: str) -> bool:
        return name.startswith(prefix) and name[len(prefix) :].rpartition(".")[0] in passes

    return wanted


# Cycles' own pass switches on a view layer that do not start with "use_pass_".
_OTHER_PASS_SWITCHES = {"pass_debug_sample_count", "pass_render_time", "denoising_store_passes"}


def _pass_switches(owner) -> list[str]:
    """The boolean pass switches of a view layer (or its Cycles settings)."""
    if owner is None:
        return []
    return [
        p.identifier
        for p in owner.bl_rna.properties
        if p.type == "BOOLEAN"
        and not p.is_readonly
        and (p.identifier.startswith("use_pass_") or p.identifier in _OTHER_PASS_SWITCHES)
    ]


def _render_result():
    return next((i for i in bpy.data.images if i.type == "RENDER_RESULT"), None)


def _renderable(obj) -> bool:
    return obj.type in {
        "MESH",
        "CURVE",
        "SURFACE",
        "META",
        "FONT",
        "CURVES",
        "POINTCLOUD",
        "VOLUME",
    }


# --- the render ----------------------------------------------------------------------


def render_passes(
    scene,
    camera=None,
    width: int | None = None,
    height: int | None = None,
    *,
    color: bool = False,
    samples: int = 1,
    kinds: Iterable[str] | None = None,
) -> RenderPasses:
    """One Cycles CPU render of the camera's view: depth, normal and index passes (and the
    shaded colour when `color`). Every setting it touches is restored afterwards.

    `kinds` (of "depth", "normals", "segmentation", "motion"; None: all but motion) limits the
    render to the passes those captures need: depth is always there, normals need the
    normal pass, segmentation the object and material index passes, motion the Vector
    pass and the object index (Cycles writes vectors only with motion blur off, as here).
    """
    kinds = set(DATA_KINDS if kinds is None else kinds)
    unknown = kinds - set(PASS_KINDS)
    if unknown:
        raise CaptureError(f"Unknown capture kinds: {sorted(unknown)}")
    want_normal = "normals" in kinds
    want_vector = "motion" in kinds
    want_index = "segmentation" in kinds or want_vector
    cam = _camera(scene, camera)
    w, h = _size(scene, width, height)
    model = camera_model(scene, cam, w, h)
    t = _Temp()
    img_state = _image_settings_state(scene.render.image_settings)
    pass_index_state: list[tuple[object, int]] = []
    objects: dict[int, str] = {}
    materials: dict[int, str] = {}
    object_ids: dict[int, object] = {}
    material_ids: dict[int, object] = {}
    slot_state = None
    created_result = None
    try:
        r = scene.render
        t.set(scene, "camera", cam)
        t.set(r, "resolution_x", w)
        t.set(r, "resolution_y", h)
        t.set(r, "resolution_percentage", 100)
        t.set(r, "use_border", False)
        t.set(r, "engine", "CYCLES")
        t.set(r, "use_compositing", False)
        t.set(r, "use_sequencer", False)
        t.set(r, "use_persistent_data", False)
        # Blur of any kind would mix depths and ids across pixels.
        t.set(r, "use_motion_blur", False)
        t.set(cam.data.dof, "use_dof", False)
        c = scene.cycles
        t.set(c, "device", "CPU")
        t.set(c, "samples", max(1, int(samples)))
        t.set(c, "use_adaptive_sampling", False)
        t.set(c, "use_denoising", False)
        # A near-zero filter puts every sample at the pixel centre: depth and ids are then
        # exact per pixel instead of mixing neighbours at edges.
        if not color:
            t.set(c, "filter_width", 0.01)
            t.set(c, "max_bounces", 0)
            t.set(c, "use_light_tree", False)
            # The data passes do not depend on lighting, yet Cycles samples the lights at
            # every first hit: with a sun and a point light that was a third of the
            # render. Camera rays pass through lights, so no pass changes. (A light that
            # cannot be changed, e.g. a linked one, is left on: slower, not wrong.)
            for obj in bpy.data.objects:
                if obj.type == "LIGHT" and obj.library is None:
                    with contextlib.suppress(AttributeError, TypeError, RuntimeError):
                        t.set(obj, "hide_render", True)
        vl = _view_layer(scene)
        for other in scene.view_layers:
            t.set(other, "use", other == vl)
        # Exactly the passes needed, every other one off (the artist's diffuse, AO,
        # cryptomatte...): each costs render time and another 4 to 16 MiB to write and
        # read back at 1024x1024.
        wanted = {
            "use_pass_z": True,
            "use_pass_normal": want_normal,
            "use_pass_object_index": want_index,
            "use_pass_material_index": want_index,
            "use_pass_combined": color,
            "use_pass_vector": want_vector,
        }
        for owner in (vl, getattr(vl, "cycles", None)):
            for switch in _pass_switches(owner):
                t.set(owner, switch, wanted.get(switch, False))

        # Unique pass indices so every object and material can be told apart. All objects,
        # not just the scene's: collection instances render objects from elsewhere.
        seen_mats: dict[str, int] = {}
        for obj in bpy.data.objects if want_index else ():
            if not _renderable(obj):
                continue
            pass_index_state.append((obj, obj.pass_index))
            obj.pass_index = len(objects) + 1
            objects[obj.pass_index] = obj.name
            object_ids[obj.pass_index] = obj
            for slot in getattr(obj, "material_slots", []):
                mat = slot.material
                if mat is None or mat.name in seen_mats:
                    continue
                pass_index_state.append((mat, mat.pass_index))
                mat.pass_index = len(seen_mats) + 1
                seen_mats[mat.name] = mat.pass_index
                materials[mat.pass_index] = mat.name
                material_ids[mat.pass_index] = mat

        # Keep the artist's own render: capture into a render slot of our own, and leave
        # no Render Result behind where there was none.
        existing = _render_result()
        if existing is not None:
            slot_state = (existing, existing.render_slots.active_index)
            slot = next((sl for sl in existing.render_slots if sl.name == CAPTURE_SLOT), None)
            if slot is None:
                slot = existing.render_slots.new()
                slot.name = CAPTURE_SLOT
            existing.render_slots.active = slot
        keys = ["depth"] + ["normal"] * want_normal
        keys += ["object_index", "material_index"] * want_index
        keys += ["vector"] * want_vector
        # Combined (RGBA) is always in the file, float32, plus the passes asked for.
        nbytes = w * h * 4 * (4 + 1 + 3 * want_normal + 2 * want_index + 4 * want_vector)
        nbytes += (w * h * 3) * color
        parent = _temp_parent(nbytes)
        with tempfile.TemporaryDirectory(prefix="dreamwire-capture-", dir=parent) as tmp:
            bpy.ops.render.render(write_still=False, scene=scene.name, layer=vl.name)
            result = _render_result()
            if result is None:
                raise CaptureError("Blender produced no render result.")
            created_result = None if existing is not None else result
            exr_path = os.path.join(tmp, "passes.exr")
            _set_exr(r.image_settings)
            result.save_render(exr_path, scene=scene)
            color_img = None
            if color:
                png_path = os.path.join(tmp, "color.png")
                _set_png(r.image_settings)
                result.save_render(png_path, scene=scene)
                color_img = _read_png(png_path)
            channels = read_exr(exr_path, _wanted_channels(vl.name, keys))
    finally:
        if slot_state is not None:
            slot_state[0].render_slots.active_index = slot_state[1]
        if created_result is not None:
            bpy.data.images.remove(created_result)
        _restore_image_settings(scene.render.image_settings, img_state)
        for owner, old in reversed(pass_index_state):
            owner.pass_index = old
        t.restore()

    z = _find_pass(channels, "depth", vl.name)
    n = _find_pass(channels, "normal", vl.name) if want_normal else None
    oi = _find_pass(channels, "object_index", vl.name) if want_index else None
    mi = _find_pass(channels, "material_index", vl.name) if want_index else None
    vec = _find_pass(channels, "vector", vl.name) if want_vector else None
    if (
        z is None
        or (want_normal and n is None)
        or (want_index and oi is None)
        or (want_vector and vec is None)
    ):
        found = (("depth", z), ("normal", n), ("index", oi), ("vector", vec))
        missing = [k for k, a in found if a is None and (k != "vector" or want_vector)]
        raise CaptureError(f"The render did not contain the {', '.join(missing)} passes.")
    z = z[..., 0].astype(np.float32)
    z[~(np.isfinite(z) & (z > 0) & (z < _BACKGROUND_Z))] = np.inf
    if oi is not None:
        oi = np.rint(oi[..., 0]).astype(np.int32)
        mi = np.rint(mi[..., 0]).astype(np.int32) if mi is not None else np.zeros_like(oi)
    return RenderPasses(
        camera=model,
        z=z,
        normal_world=n[..., :3].astype(np.float32) if n is not None else None,
        object_index=oi,
        material_index=mi,
        objects=objects,
        materials=materials,
        object_ids=object_ids,
        material_ids=material_ids,
        color=color_img,
        vector=vec.astype(np.float32) if vec is not None else None,
    )


# --- captures ------------------------------------------------------------------------


def capture_depth(
    scene, camera=None, width=None, height=None, *, mode="linear", gamma=1.0, passes=None
) -> np.ndarray:
    p = passes or render_passes(scene, camera, width, height, kinds=("depth",))
    return depth_conv.depth_image(p.z, mode=mode, gamma=gamma)


def capture_motion(scene, camera=None, width=None, height=None, *, passes=None) -> FrameMotion:
    """The frame's true motion (to the frames before and after), view depth and object
    ids, from one render with the Vector pass (kinds "motion")."""
    p = passes or render_passes(scene, camera, width, height, kinds=("motion",))
    if p.vector is None or p.object_index is None:
        raise CaptureError("These passes were rendered without the Vector pass (kinds).")
    to_prev, to_next = from_blender_vector(p.vector)
    return FrameMotion(to_prev, to_next, p.z.copy(), p.object_index.copy())


def capture_normals(
    scene, camera=None, width=None, height=None, *, background=normal_conv.FACING, passes=None
) -> np.ndarray:
    p = passes or render_passes(scene, camera, width, height, kinds=("normals",))
    if p.normal_world is None:
        raise CaptureError("These passes were rendered without normals (kinds).")
    # dreamwire.shared.imaging.normals' convention, computed in cache-sized blocks.
    return normals_core.normal_image(
        p.normal_world, p.camera.matrix_world, mask=p.geometry, background=background
    )


def _id(ids: dict, idx: int, name: str, collection):
    """The object or material a pass index was given to; by name if it has gone."""
    ref = ids.get(idx)
    if ref is not None:
        with contextlib.suppress(ReferenceError):
            if ref.name == name:
                return ref
    return collection.get(name)


def segmentation_classes(scene, passes: RenderPasses, guess_names: bool = True):
    """(object index -> class, explicit material index -> class, guessed material -> class)."""
    prop = seg_core.CLASS_PROPERTY
    obj_classes = {}
    for idx, name in passes.objects.items():
        obj = _id(passes.object_ids, idx, name, scene.objects) or bpy.data.objects.get(name)
        explicit = obj.get(prop) if obj is not None else None
        obj_classes[idx] = seg_core.class_for(explicit, name, guess_names)
    mat_explicit, mat_guess = {}, {}
    for idx, name in passes.materials.items():
        mat = _id(passes.material_ids, idx, name, bpy.data.materials)
        explicit = seg_core.resolve(mat.get(prop)) if mat is not None else None
        if explicit is not None:
            mat_explicit[idx] = explicit
        elif guess_names:
            mat_guess[idx] = seg_core.guess_from_name(name)
    return obj_classes, mat_explicit, mat_guess


def capture_segmentation(
    scene,
    camera=None,
    width=None,
    height=None,
    *,
    default: int | str | None = None,
    guess_names: bool = True,
    passes=None,
) -> tuple[np.ndarray, np.ndarray]:
    """ADE20K-coloured segmentation and its label map (class ids, -1 = nothing).

    Precedence per pixel: the material's class property, then the object's class (property
    or name), then the material's name, then `default`.
    """
    p = passes or render_passes(scene, camera, width, height, kinds=("segmentation",))
    if p.object_index is None:
        raise CaptureError("These passes were rendered without the index passes (kinds).")
    default_id = seg_core.resolve(default)
    obj_classes, mat_explicit, mat_guess = segmentation_classes(scene, p, guess_names)
    # The class and colour of each (object, material) pair, then one lookup per pixel.
    oi, mi = p.object_index, p.material_index
    n_obj = max(max(p.objects, default=0), int(oi.max(initial=0)))
    n_mat = max(max(p.materials, default=0), int(mi.max(initial=0)))
    table = seg_core.label_table(n_obj, n_mat, obj_classes, mat_explicit, mat_guess, default_id)
    labels = seg_core.lookup(table, oi, mi)
    image = seg_core.lookup(ade20k.colorize(table), oi, mi)
    return image, labels


def capture_color(scene, camera=None, width=None, height=None, *, samples=None) -> np.ndarray:
    """A shaded render of the camera's view (Cycles, CPU) with the scene's colour management.
    samples=None uses the scene's Cycles samples, capped at 32 to stay interactive."""
    if samples is None:
        samples = min(int(getattr(scene.cycles, "samples", 16)), 32)
    return render_passes(
        scene, camera, width, height, color=True, samples=samples, kinds=("depth",)
    ).color


def _armature_bones(obj) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    mw = np.array(obj.matrix_world, dtype=np.float64)
    out = {}
    for pb in obj.pose.bones:
        hd = mw @ np.array([*pb.head, 1.0])
        tl = mw @ np.array([*pb.tail, 1.0])
        out[pb.name] = (hd[:3], tl[:3])
    return out


def capture_pose(
    scene,
    camera=None,
    width=None,
    height=None,
    *,
    armatures: Iterable | None = None,
    overrides: Mapping[str, object] | None = None,
    skeleton: str | None = None,
) -> tuple[PoseFrame, np.ndarray]:
    """OpenPose keypoints of every armature (or the given ones) and the pose image."""
    model = camera_model(scene, camera, width, height)
    if armatures is None:
        armatures = [o for o in scene.objects if o.type == "ARMATURE" and o.visible_get()]
    armatures = list(armatures)
    if not armatures:
        raise CaptureError("No armature to take a pose from: add one or select one.")
    bpy.context.view_layer.update()
    people = []
    for arm in armatures:
        if arm.type != "ARMATURE":
            raise CaptureError(f"'{arm.name}' is not an armature.")
        bones = _armature_bones(arm)
        sk = skeleton or pose_core.detect_skeleton(bones)
        if sk is None and not overrides:
            raise CaptureError(pose_core.unknown_skeleton_message(list(bones), arm.name))
        try:
            joints = pose_core.world_keypoints(bones, sk, overrides)
        except ValueError as e:
            raise CaptureError(f"{arm.name}: {e}") from None
        people.append(pose_core.project_keypoints(joints, model))
    frame = PoseFrame(model.width, model.height, people)
    return frame, draw_bodypose(frame)


def _face_mesh(obj, depsgraph) -> face_core.FaceMesh:
    """The evaluated mesh (shape keys, armature and other deforming modifiers applied) in
    world space, with the vertices of its face_* groups (read from the original mesh: a
    deform keeps the vertex order)."""
    groups_by_index = {g.index: g.name for g in obj.vertex_groups if g.name in face_core.GROUPS}
    groups: dict[str, list[int]] = {name: [] for name in groups_by_index.values()}
    for v in obj.data.vertices:
        for g in v.groups:
            name = groups_by_index.get(g.group)
            if name is not None and g.weight > 0:
                groups[name].append(v.index)
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    try:
        n = len(mesh.vertices)
        if n != len(obj.data.vertices):
            raise CaptureError(
                f"'{obj.name}': its modifiers change the mesh's vertices, so the face_* "
                "groups no longer name them; keep only deforming modifiers (armature, shape "
                "keys) before the face capture"
            )
        co = np.empty(n * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        edges = np.empty(len(mesh.edges) * 2, np.int32)
        mesh.edges.foreach_get("vertices", edges)
        mw = np.array(ev.matrix_world, dtype=np.float64)
    finally:
        ev.to_mesh_clear()
    world = np.c_[co.reshape(-1, 3), np.ones(n)] @ mw.T
    return face_core.FaceMesh(world[:, :3], edges.reshape(-1, 2), groups)


def capture_face(
    scene, camera=None, width=None, height=None, *, objects: Iterable | None = None
) -> np.ndarray:
    """The MediaPipe face control image (ControlNetMediaPipeFace) of every visible mesh
    with face_* vertex groups (or the given meshes), as the camera sees them posed."""
    model = camera_model(scene, camera, width, height)
    bpy.context.view_layer.update()
    if objects is None:
        objects = [
            o
            for o in scene.objects
            if o.type == "MESH"
            and o.visible_get()
            and any(g.name in face_core.GROUPS for g in o.vertex_groups)
        ]
    objects = list(objects)
    if not objects:
        raise CaptureError(face_core.no_face_message())
    depsgraph = bpy.context.evaluated_depsgraph_get()
    meshes = []
    for obj in objects:
        if obj.type != "MESH":
            raise CaptureError(f"'{obj.name}' is not a mesh.")
        meshes.append(_face_mesh(obj, depsgraph))
    if not any(m.has_features() for m in meshes):
        raise CaptureError(face_core.no_face_message())
    return face_core.face_image(meshes, model)


def capture_all(
    scene,
    camera=None,
    width=None,
    height=None,
    *,
    kinds: Iterable[str] = ("depth", "normals", "segmentation", "pose", "color"),
    color_samples: int | None = None,
) -> dict:
    """Several captures from one render: {kind: image}, plus 'labels' and 'pose_json'.
    "face" (not among the defaults: it needs face_* vertex groups) is capture_face's."""
    kinds = set(kinds)
    unknown = kinds - {"depth", "normals", "segmentation", "pose", "face", "color"}
    if unknown:
        raise CaptureError(f"Unknown capture kinds: {sorted(unknown)}")
    out: dict = {}
    if kinds & {"depth", "normals", "segmentation", "color"}:
        want_color = "color" in kinds
        samples = 1
        if want_color:
            samples = color_samples or min(int(getattr(scene.cycles, "samples", 16)), 32)
        p = render_passes(
            scene,
            camera,
            width,
            height,
            color=want_color,
            samples=samples,
            kinds=kinds & set(DATA_KINDS),
        )
        if "depth" in kinds:
            out["depth"] = capture_depth(scene, passes=p)
        if "normals" in kinds:
            out["normals"] = capture_normals(scene, passes=p)
        if "segmentation" in kinds:
            out["segmentation"], out["labels"] = capture_segmentation(scene, passes=p)
        if want_color:
            out["color"] = p.color
    if "pose" in kinds:
        frame, img = capture_pose(scene, camera, width, height)
        out["pose"] = img
        out["pose_json"] = to_openpose_json(frame)
    if "face" in kinds:
        out["face"] = capture_face(scene, camera, width, height)
    return out


def store_image(name: str, array: np.ndarray, *, non_color: bool = True):
    """Put an H x W x 3|4 uint8 (or float 0..1) array into a bpy image named `name`,
    creating or resizing it, so the artist can see what is sent."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    h, w, channels = a.shape
    # Straight into the RGBA buffer Blender takes, flipped to bottom row first, then
    # scaled in place: fewer passes over the pixels than converting, concatenating an
    # alpha channel and copying flipped (the values are the same: uint8 / 255 in float32).
    rgba = np.empty((h, w, 4), dtype=np.float32)
    if channels >= 4:
        rgba[...] = a[::-1, :, :4]
    else:
        rgba[..., :3] = a[::-1, :, :3]
        rgba[..., 3] = 255.0 if a.dtype == np.uint8 else 1.0
    if a.dtype == np.uint8:
        rgba /= np.float32(255.0)
    img = bpy.data.images.get(name)
    if img is None:
        img = bpy.data.images.new(name, w, h, alpha=True)
    elif tuple(img.size) != (w, h):
        img.scale(w, h)
    if non_color and img.colorspace_settings.name != "Non-Color":
        img.colorspace_settings.name = "Non-Color"
    img.pixels.foreach_set(rgba.ravel())
    img.update()
    return img
