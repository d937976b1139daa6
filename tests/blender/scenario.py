"""One Blender scenario in a fresh process: install the built extension zip into a private
user folder, enable it, build a scene, run operators, and write what happened as JSON.

    python -S scenario.py CONFIG.json

`-S` keeps the venv's .pth files (and with them the editable `dreamwire` install) out of
sys.path: the add-on must run on what the zip brought (its dreamwire_shared wheel). The
venv's site-packages is appended by hand for `bpy` itself. bpy can be imported once per
process, hence one process per scenario.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

CONFIG = json.loads(Path(sys.argv[1]).read_text())
sys.path.append(CONFIG["site_packages"])
os.environ["BLENDER_USER_RESOURCES"] = CONFIG["user_dir"]

import bpy  # noqa: E402
import numpy as np  # noqa: E402

OUT: dict = {"ok": False, "checks": {}}


def record(key, value):
    OUT["checks"][key] = value


def install():
    r = bpy.ops.extensions.package_install_files(
        filepath=CONFIG["zip"], repo="user_default", enable_on_install=True
    )
    record("install", sorted(r))
    mods = [a.module for a in bpy.context.preferences.addons]
    record("enabled", "bl_ext.user_default.dreamwire" in mods)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.dreamwire"].preferences
    prefs.address = CONFIG.get("address", "tcp://127.0.0.1:9")
    # Generous: the test machine is shared; only the dead-address case shortens it.
    prefs.timeout = int(CONFIG.get("connect_timeout", 60))
    import zmq

    import dreamwire.shared.client as client_mod

    record("shared_from", client_mod.__file__)
    local = os.path.join(CONFIG["user_dir"], "extensions", ".local")
    record(
        "zmq_wheel_installed",
        any(name.startswith("zmq") for _, dirs, _ in os.walk(local) for name in dirs),
    )
    record("zmq_from", zmq.__file__)


def addon():
    return sys.modules["bl_ext.user_default.dreamwire"]


def clear_scene():
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for coll in (
        bpy.data.meshes,
        bpy.data.materials,
        bpy.data.cameras,
        bpy.data.armatures,
        bpy.data.images,
    ):
        for block in list(coll):
            if block.users == 0:
                coll.remove(block)


def mesh_object(name, verts, faces, location=(0, 0, 0), uv=False):
    me = bpy.data.meshes.new(name)
    me.from_pydata(verts, [], faces)
    me.update()
    obj = bpy.data.objects.new(name, me)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    if uv:
        layer = me.uv_layers.new(name="UVMap")
        # Planar UVs from x/z (good enough for flat test faces).
        co = np.array([v.co for v in me.vertices])
        lo, hi = co.min(axis=0), co.max(axis=0)
        span = np.where(hi - lo > 1e-9, hi - lo, 1)
        for loop in me.loops:
            p = (co[loop.vertex_index] - lo) / span
            layer.data[loop.index].uv = (p[0], p[2] if span[2] != 1 or hi[2] != lo[2] else p[1])
    return obj


def cube(name, size=1.0, location=(0, 0, 0)):
    s = size
    v = [
        (-s, -s, -s),
        (s, -s, -s),
        (s, s, -s),
        (-s, s, -s),
        (-s, -s, s),
        (s, -s, s),
        (s, s, s),
        (-s, s, s),
    ]
    f = [(0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7), (4, 5, 6, 7), (3, 2, 1, 0)]
    return mesh_object(name, v, f, location)


def camera(name, location, target=(0, 0, 0), lens=35.0):
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.data.lens = lens
    cam.location = location
    bpy.context.scene.collection.objects.link(cam)
    direction = np.array(target, float) - np.array(location, float)
    from mathutils import Vector

    cam.rotation_euler = Vector(direction).to_track_quat("-Z", "Y").to_euler()
    return cam


def settings(steps=2, size=64):
    s = bpy.context.scene.dreamwire
    s.prompt = "weathered stone"
    s.negative = "blurry"
    s.steps = steps
    s.sampler = CONFIG.get("sampler", "Euler a")
    s.cfg = 5.0
    s.seed = 1234
    s.width = size
    s.height = size
    s.texture_size = 64
    s.output_dir = CONFIG["out"]
    r = bpy.context.scene.render
    r.resolution_x = size
    r.resolution_y = size
    r.resolution_percentage = 100
    return s


def select(*objs):
    for o in bpy.context.scene.objects:
        o.select_set(False)
    for o in objs:
        o.select_set(True)
    bpy.context.view_layer.objects.active = objs[0] if objs else None


def run_op(op):
    """Call an operator; return (result, error message or None)."""
    try:
        return sorted(op()), None
    except RuntimeError as exc:
        return None, str(exc)


def pixels(img) -> np.ndarray:
    w, h = img.size
    f = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(f)
    return np.rint(f.reshape(h, w, 4)[::-1] * 255).astype(np.int32)


def backend_images():
    """Generated images the backend saved, oldest first, as arrays."""
    from dreamwire.shared.codec import decode_png

    root = CONFIG["backend_out"]
    found = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".png"):
                p = os.path.join(dirpath, f)
                found.append((os.path.getmtime(p), p))
    return [
        (p, decode_png(Path(p).read_bytes())[..., :3].astype(np.int32)) for _, p in sorted(found)
    ]


def material_state():
    return {
        "materials": sorted(m.name for m in bpy.data.materials),
        "images": sorted(i.name for i in bpy.data.images),
    }


def tex_image(obj):
    mat = obj.active_material
    if mat is None:
        return None
    for n in mat.node_tree.nodes:
        if n.type == "TEX_IMAGE" and n.label == "Dreamwire":
            return n.image
    return None


def base_color_linked_to_texture(obj) -> bool:
    mat = obj.active_material
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    links = bsdf.inputs["Base Color"].links
    return bool(links) and links[0].from_node.type == "TEX_IMAGE"


def bilinear(img, x, y):
    h, w = img.shape[:2]
    x = min(max(x - 0.5, 0), w - 1)
    y = min(max(y - 0.5, 0), h - 1)
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


# --- scenarios -----------------------------------------------------------------------


class FakeLayout:
    """Stands in for a panel's UILayout (headless Blender has no window to draw in): every
    property and operator the panel names must exist."""

    def __init__(self, log):
        self.log = log
        self.enabled = self.active = True

    def _child(self, *a, **k):
        return FakeLayout(self.log)

    row = column = box = split = _child

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, f"no property {name!r} on {data!r}"
        self.log.append(("prop", name))
        self.log.append(("path", _path(data, name)))
        if not self.active:
            self.log.append(("greyed", name))

    def operator(self, idname, **kw):
        mod, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, mod), op), f"no operator {idname}"
        self.log.append(("operator", idname))
        if not self.active:
            self.log.append(("greyed", idname))

    def label(self, text="", **kw):
        self.log.append(("label", text))

    def template_list(self, listtype, list_id, data, items, active_data, active, **kw):
        assert hasattr(bpy.types, listtype), listtype
        self.log.append(("list", listtype))
        self.log += [("path", _path(data, items)), ("path", _path(active_data, active))]

    def progress(self, **kw):
        self.log.append(("progress", kw.get("factor")))

    def separator(self, **kw):
        pass

    def template_icon(self, **kw):
        self.log.append(("icon", kw.get("icon_value")))


def _path(data, name):
    """`dreamwire.depth.enabled`: where a drawn property lives (the scene's own: `.name`)."""
    try:
        base = data.path_from_id()
    except (ValueError, TypeError):
        base = ""
    return f"{base}.{name}"


def our_panels(space=None):
    """The add-on's registered panels (bpy.types.Panel subclasses with its prefix), in the
    order they were registered; of one editor with `space`."""
    return [
        c
        for c in bpy.types.Panel.__subclasses__()
        if c.__name__.startswith("DREAMWIRE_PT")
        and c.is_registered
        and space in (None, c.bl_space_type)
    ]


def draw_panels(space, log, by_panel=None):
    """Draw every panel of one editor, parents first, as Blender would (poll first)."""
    for cls in our_panels(space):
        poll = getattr(cls, "poll", None)
        if poll is not None and not poll(bpy.context):
            continue
        start = len(log)
        cls.draw(_DrawProxy(cls, log), bpy.context)
        if by_panel is not None:
            by_panel[cls.bl_idname] = log[start:]


def draw_ui():
    """Draw the N-panel's panels and the preferences into FakeLayouts in several states."""
    drawn = {}
    st = bpy.context.window_manager.dreamwire_status
    for state in ("idle", "running", "failed"):
        st.state, st.text, st.progress = state, f"{state} text", 0.5
        log = []
        draw_panels("VIEW_3D", log)
        drawn[state] = log
    st.state = "idle"
    prefs = bpy.context.preferences.addons["bl_ext.user_default.dreamwire"].preferences
    log = []
    type(prefs).draw(_DrawProxy(prefs, log), bpy.context)
    drawn["prefs"] = log
    return drawn


class _DrawProxy:
    """`self` for a draw method (a panel's, the preferences'): the drawn object's
    attributes and a FakeLayout."""

    def __init__(self, prefs, log):
        self._p = prefs
        self.layout = FakeLayout(log)

    def __getattr__(self, name):
        return getattr(self._p, name)


def local_backend_start():
    """Start Local Backend with a command that is not there: the operator says why and the
    panels keep saying it after the client's error changes; then one that runs. Returns its
    process, for `local_backend_quit`."""
    a = addon()
    prefs = bpy.context.preferences.addons["bl_ext.user_default.dreamwire"].preferences
    prefs.backend_models = CONFIG["out"]
    prefs.backend_command = CONFIG["missing_command"]
    record("local_missing", list(run_op(lambda: bpy.ops.dreamwire.start_backend())))
    a.connection.CONN.error = "a later status from the client"
    drawn = draw_ui()
    record("local_labels_idle", [t for kind, t in drawn["idle"] if kind == "label"])
    record("local_labels_prefs", [t for kind, t in drawn["prefs"] if kind == "label"])
    prefs.backend_command = CONFIG["sleeper_command"]
    record("local_started", list(run_op(lambda: bpy.ops.dreamwire.start_backend())))
    record("local_cleared", a.connection.LOCAL.failure_text)
    a.connection.CONN.close()
    return a.connection.LOCAL.proc.process


def local_backend_quit(popen):
    """Blender's quit (bpy.utils._on_exit) disables every add-on: the backend goes too."""
    import addon_utils

    record("local_running_before_quit", popen.poll() is None)
    addon_utils.disable_all()
    record("local_exit_after_quit", popen.poll())


def sc_install():
    s = bpy.context.scene.dreamwire
    record("operators", sorted(n for n in dir(bpy.ops.dreamwire) if not n.startswith("_")))
    record("panels", [hasattr(bpy.types, n) for n in ("DREAMWIRE_PT_view3d", "DREAMWIRE_PT_image")])
    record("drawn", draw_ui())
    local = local_backend_start()
    # Orbit cameras around a selected cube: all in the multi-view list, all aimed at it.
    clear_scene()
    cube("Box", 1.0, location=(2, 1, 0.5))
    select(bpy.data.objects["Box"])
    record("orbit", sorted(bpy.ops.dreamwire.add_orbit_cameras(count=3, elevation=30)))
    aims = []
    for item in bpy.context.scene.dreamwire.cameras:
        cam = item.camera
        forward = -np.array(cam.matrix_world.to_3x3().col[2])
        to_center = np.array((2, 1, 0.5)) - np.array(cam.matrix_world.translation)
        aims.append(float(forward @ to_center / np.linalg.norm(to_center)))
    record("orbit_aims", aims)
    s.prompt = "saved prompt"
    s.steps = 7
    s.normals.enabled = True
    s.normals.weight = 0.4
    s.inpaint_fill = "latent noise"
    path = os.path.join(CONFIG["out"], "settings.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_homefile(use_empty=True)
    record("after_reset", bpy.context.scene.dreamwire.prompt)
    bpy.ops.wm.open_mainfile(filepath=path)
    s = bpy.context.scene.dreamwire
    record(
        "reloaded",
        [
            s.prompt,
            s.steps,
            s.normals.enabled,
            round(s.normals.weight, 3),
            s.depth.enabled,
            s.inpaint_fill,
        ],
    )
    local_backend_quit(local)


def record_panel_tree():
    """The sub-panels as registered: ids, parents, folded or not; each drawn in both
    editors, with the optional settings switched on so that every property shows."""
    tree = []
    for cls in our_panels():
        parent = getattr(cls, "bl_parent_id", "")
        options = sorted(getattr(cls, "bl_options", set()))
        tree.append([cls.bl_idname, cls.bl_space_type, parent, options, cls.bl_label])
        tree[-1].append(hasattr(bpy.types, cls.bl_idname) and cls.bl_category == "Dreamwire")
    record("panel_tree", tree)
    s = bpy.context.scene.dreamwire
    s.colour.enabled = s.colour_as_init = s.pose.enabled = True
    by_panel, log = {}, []
    for space in ("VIEW_3D", "IMAGE_EDITOR"):
        draw_panels(space, log, by_panel)
    s.colour.enabled = s.colour_as_init = s.pose.enabled = False
    record("panel_props", {k: [n for kind, n in v if kind == "prop"] for k, v in by_panel.items()})
    record(
        "panel_ops", {k: [n for kind, n in v if kind == "operator"] for k, v in by_panel.items()}
    )
    drawn = {n for kind, n in log if kind == "path"}
    settings_props = [
        p.identifier
        for p in type(s).bl_rna.properties
        if p.identifier not in ("rna_type", "name") and not p.is_hidden
    ]
    record(
        "unreachable",
        [
            p
            for p in settings_props
            if f"dreamwire.{p}" not in drawn
            and not any(d.startswith(f"dreamwire.{p}.") for d in drawn)
        ],
    )
    # While an action runs, the settings are greyed out; the Backend stays usable.
    st = bpy.context.window_manager.dreamwire_status
    st.state = "running"
    locked = {}
    for cls in our_panels("VIEW_3D"):
        proxy = _DrawProxy(cls, [])
        cls.draw(proxy, bpy.context)
        locked[cls.bl_idname] = not proxy.layout.enabled
    st.state = "idle"
    record("locked_while_running", locked)


def sc_panels():
    """The N-panel's sub-panels, drawn in both editors; then off and on again (Blender
    refuses a sub-panel whose parent is not registered, in either direction)."""
    import addon_utils

    record_panel_tree()
    addon_utils.disable("bl_ext.user_default.dreamwire")
    record("after_disable", [c.__name__ for c in our_panels()])
    addon_utils.enable("bl_ext.user_default.dreamwire")
    record("after_enable", len(our_panels()))


def sc_generate_texture():
    clear_scene()
    settings().seamless = True
    obj = mesh_object(
        "Wall", [(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)], [(0, 1, 2, 3)], uv=True
    )
    select(obj)
    # A reference picture (an image datablock, alpha half transparent): an IP-Adapter unit.
    ref = bpy.data.images.new("Style", 40, 24, alpha=True)
    ref_px = np.zeros((24, 40, 4), np.float32)
    ref_px[..., 0], ref_px[..., 2], ref_px[..., 3] = 1.0, np.linspace(0, 1, 40), 1.0
    ref_px[:12, :, 3] = 0.0  # the top half transparent: laid over white
    ref.pixels.foreach_set(ref_px[::-1].ravel())
    s = bpy.context.scene.dreamwire
    s.reference_image = ref
    record("reference_defaults", [round(v, 4) for v in (s.reference_weight, s.reference_start)])
    res, err = run_op(lambda: bpy.ops.dreamwire.generate_texture())
    record("result", res)
    record("error", err)
    record("reference_job", job_field("texture Wall", "controls"))
    record("reference_infotext", job_infotext("texture Wall"))
    conn = sys.modules["bl_ext.user_default.dreamwire.connection"]
    record("served_sd1", conn.welcome().control_types["sd1"])
    img = tex_image(obj)
    record("has_texture", img is not None)
    record("linked", base_color_linked_to_texture(obj))
    gen = backend_images()
    record("backend_images", len(gen))
    px = pixels(img)[..., :3]
    record(
        "texture_equals_generated",
        bool(gen) and px.shape == gen[-1][1].shape and int(np.abs(px - gen[-1][1]).max()),
    )
    record("png_written", os.path.exists(os.path.join(CONFIG["out"], "Wall_texture.png")))
    record("status", bpy.context.window_manager.dreamwire_status.text)
    record("jobs", job_records())
    record("seamless", job_field("texture Wall", "seamless"))
    props_mod = sys.modules["bl_ext.user_default.dreamwire.props"]
    record("model_search", props_mod._search_models(None, bpy.context, "tiny"))
    record("sampler_search", props_mod._search_samplers(None, bpy.context, "euler"))
    drawn = draw_ui()
    record("panel_labels_connected", [t for k, t in drawn["idle"] if k == "label"])
    preview = bpy.data.images.get("Dreamwire Preview")
    record("preview", list(preview.size) if preview is not None else None)


def sc_upscale():
    clear_scene()
    s = settings()
    s.seamless = True
    obj = mesh_object(
        "Wall", [(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)], [(0, 1, 2, 3)], uv=True
    )
    select(obj)
    record("generate", run_op(lambda: bpy.ops.dreamwire.generate_texture()))
    src = tex_image(obj)
    record("recorded_seamless", src.get("dreamwire_seamless"))
    record("source_size", list(src.size))
    source_px = pixels(src)
    # From the N-panel: the active object's texture, Lanczos x2, Seamless "From image".
    s.upscale_upscaler, s.upscale_factor, s.upscale_refine = "Lanczos", 2.0, False
    record("texture_upscale", run_op(lambda: bpy.ops.dreamwire.upscale_image()))
    new = tex_image(obj)
    gen = backend_images()[-1][1]
    px = pixels(new)
    record("texture_name", new.name)
    record("texture_size", list(new.size))
    record(
        "texture_vs_backend",
        int(np.abs(px[..., :3] - gen).max()) if px.shape[:2] == gen.shape[:2] else -1,
    )
    record("texture_job_seamless", job_field("upscale Dreamwire Wall", "seamless"))
    record("texture_job_upscale", job_field("upscale Dreamwire Wall", "upscale"))
    record("new_recorded", new.get("dreamwire_seamless"))
    record(
        "source_unchanged",
        bool(np.array_equal(pixels(bpy.data.images["Dreamwire Wall"]), source_px)),
    )
    record("pngs", sorted(os.listdir(CONFIG["out"])))
    # Any image (the Image Editor's), refined, with an upscaler model from the welcome.
    rng = np.random.default_rng(4)
    photo = bpy.data.images.new("Photo", 48, 40, alpha=True)
    rgba = np.concatenate([rng.random((40, 48, 3)), np.ones((40, 48, 1))], axis=2)
    photo.pixels.foreach_set(rgba.astype(np.float32).ravel())
    props_mod = sys.modules["bl_ext.user_default.dreamwire.props"]
    record("upscaler_search", props_mod._search_upscalers(None, bpy.context, "compact"))
    s.upscale_upscaler, s.upscale_factor = "tiny-compact-x4", 1.5
    s.upscale_refine, s.upscale_strength = True, 0.5
    record("photo_upscale", run_op(lambda: bpy.ops.dreamwire.upscale_image(image="Photo")))
    up = bpy.data.images.get("Photo (Upscaled)")
    gen = backend_images()[-1][1]
    px = pixels(up)
    record("photo_size", list(up.size))
    record(
        "photo_vs_backend",
        int(np.abs(px[..., :3] - gen).max()) if px.shape[:2] == gen.shape[:2] else -1,
    )
    record("photo_vs_source_shape", list(pixels(photo).shape))
    record("photo_job_seamless", job_field("upscale Photo", "seamless"))
    record("photo_job_upscale", job_field("upscale Photo", "upscale"))
    record("photo_job_strength", job_field("upscale Photo", "strength"))
    s.upscale_upscaler = "4x-Missing"
    record("missing", run_op(lambda: bpy.ops.dreamwire.upscale_image(image="Photo"))[1])
    record("nothing", run_op(lambda: bpy.ops.dreamwire.upscale_image(image="No such"))[1])


def _project_scene():
    clear_scene()
    settings()
    target = cube("Target", 1.0)
    # An occluder in front of the lower-left part of the front face (not selected).
    blocker = mesh_object(
        "Blocker",
        [(-1.6, -2.0, -1.6), (0.0, -2.0, -1.6), (0.0, -2.0, 0.0), (-1.6, -2.0, 0.0)],
        [(0, 1, 2, 3)],
    )
    cam = camera("Cam", (0.0, -6.0, 0.0))
    bpy.context.scene.camera = cam
    return target, blocker, cam


def _texel_of(obj, face_index, bary=(1 / 3, 1 / 3, 1 / 3)):
    """(texture pixel xy, world point) of a point inside one face, from Blender's own data."""
    me = obj.data
    poly = me.polygons[face_index]
    loops = list(poly.loop_indices)[:3]
    uv_layer = me.uv_layers.active
    uv = sum(np.array(uv_layer.data[li].uv) * b for li, b in zip(loops, bary, strict=False))
    co = sum(
        np.array(obj.matrix_world @ me.vertices[me.loops[li].vertex_index].co) * b
        for li, b in zip(loops, bary, strict=False)
    )
    return uv, co


def sc_project():
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    target, blocker, cam = _project_scene()
    s = bpy.context.scene.dreamwire
    # The bake itself, as the views left it: no filling of unseen texels, and no edge
    # feather (it hands a face's silhouette texels to the fill, and this checks where
    # every texel of the face reads the view).
    s.fill_distance, s.fill_inpaint = 0, False
    s.edge_feather = 0
    s.normals.enabled = True
    s.normals.weight = 0.5
    s.colour.enabled = True
    s.colour.weight = 0.3
    record("uv_before", len(target.data.uv_layers))
    select(target)
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("result", res)
    record("error", err)
    record("uv_after", len(target.data.uv_layers))
    img = tex_image(target)
    record("has_texture", img is not None)
    if img is None:
        return
    record("blocker_untouched", blocker.active_material is None)
    tex = pixels(img)
    gen = backend_images()[-1][1]
    view = pixels(bpy.data.images["Dreamwire view"])[..., :3]
    record("view_is_generated", int(np.abs(view - gen).max()))
    size = img.size[0]
    scene = bpy.context.scene

    def check(face, bary, mirror=False):
        uv, co = _texel_of(target, face, bary)
        tx, ty = int(uv[0] * size), int((1 - uv[1]) * size)
        ndc = world_to_camera_view(scene, cam, Vector(co))
        px, py = ndc.x * 64, (1 - ndc.y) * 64
        if mirror:  # a deliberately wrong mapping, to show the comparison can fail
            px = 64 - px
        return tex[ty, tx], bilinear(gen.astype(float), px, py)

    rng = np.random.default_rng(0)
    right, wrong = [], []
    for _ in range(40):
        b = rng.dirichlet((1, 1, 1))
        _, co = _texel_of(target, 0, b)
        if co[0] < 0.1 and co[2] < 0.1:
            continue  # behind the blocker
        got, expect = check(0, b)
        right.append(float(np.abs(got[:3] - expect).mean()))
        got, expect = check(0, b, mirror=True)
        wrong.append(float(np.abs(got[:3] - expect).mean()))
    record("front_mean_diff", float(np.mean(right)))
    record("mirrored_mean_diff", float(np.mean(wrong)))

    # Front face (index 0 faces -y, toward the camera), upper right: seen, colour from the image.
    diffs = []
    for bary in ((0.1, 0.2, 0.7), (0.05, 0.15, 0.8), (0.2, 0.2, 0.6)):
        got, expect = check(0, bary)
        diffs.append(float(np.abs(got[:3] - expect).max()))
        record("front_alpha", int(got[3]))
    record("front_diffs", diffs)
    # Back face (index 2, +y): never seen -> alpha 0 (nothing baked there).
    got, _ = check(2, (1 / 3, 1 / 3, 1 / 3))
    record("back_alpha", int(got[3]))
    # Lower-left of the front face sits behind the blocker -> not baked.
    got, _ = check(0, (0.8, 0.1, 0.1))
    record("occluded_alpha", int(got[3]))
    # Top face (index 4) is seen edge-on by a camera at z=0: grazing -> not baked.
    got, _ = check(4, (1 / 3, 1 / 3, 1 / 3))
    record("grazing_alpha", int(got[3]))
    record("coverage", float((tex[..., 3] > 0).mean()))
    record("png_written", os.path.exists(os.path.join(CONFIG["out"], "Target_projected.png")))
    record("coverage_report", _coverage_json("Target"))
    record("jobs", job_records())
    record(
        "capture_images", sorted(i.name for i in bpy.data.images if i.name.startswith("Dreamwire "))
    )


def _coverage_json(obj_name):
    path = os.path.join(CONFIG["out"], f"{obj_name}_coverage.json")
    return json.loads(Path(path).read_text()) if os.path.exists(path) else None


def sc_object_prompts():
    """Two objects, each with its own prompt, seen by one camera: the view's job carries a
    regional prompt per object, its mask where the camera sees that object."""
    clear_scene()
    s = settings()
    s.fill_distance, s.fill_inpaint = 0, False
    left = cube("Left", 0.6, location=(-1.0, 0, 0))
    right = cube("Right", 0.6, location=(1.0, 0, 0))
    left.dreamwire_prompt = "rusty metal crate"
    right.dreamwire_prompt = ""  # no prompt of its own: the scene prompt alone
    cam = camera("ObjectsCam", (0, -6, 0.5))
    bpy.context.scene.camera = cam
    select(left, right)
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("result", [res, err])
    regions = job_field("project ObjectsCam", "regions") or []
    record("region_prompts", [r["prompt"] for r in regions])
    right.dreamwire_prompt = "a wooden crate"
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("second_result", [res, err])
    found = [
        rec
        for rec in (
            json.loads(Path(d, "result.json").read_text())
            for d, _, files in os.walk(CONFIG["backend_out"])
            if "result.json" in files
        )
        if rec["tag"] == "project ObjectsCam" and len(rec["job"].get("regions") or []) == 2
    ]
    record("two_regions", [r["prompt"] for r in found[0]["job"]["regions"]] if found else [])
    # The object's prompt is saved with it (the .blend keeps it).
    record("stored", left.dreamwire_prompt)


def sc_multiview():
    clear_scene()
    s = settings()
    s.inpaint_fill = "latent noise"
    target = cube("Target", 1.0)
    cams = [
        camera(f"View{i}", (6 * math.sin(a), -6 * math.cos(a), 1.5))
        for i, a in enumerate((0.0, math.radians(65), math.radians(-65)))
    ]
    bpy.context.scene.camera = cams[0]
    select(target)
    s.fill_distance, s.fill_inpaint = 0, False  # one view's own coverage, unfilled
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("single_error", err)
    single_cov = float((pixels(tex_image(target))[..., 3] > 0).mean())
    record("single_report", _coverage_json("Target"))
    jobs_before = len(backend_images())
    # A short fill distance: dilation fills along the seams, the UV inpaint pass the rest.
    s.fill_distance, s.fill_inpaint = 2, True
    res, err = run_op(lambda: bpy.ops.dreamwire.project_multiview())
    record("result", res)
    record("error", err)
    record("jobs", len(backend_images()) - jobs_before)
    tex = pixels(tex_image(target))
    record("single_coverage", single_cov)
    record("multi_coverage", float((tex[..., 3] > 0).mean()))
    # Front (0), right (1, +x) and left (3, -x) faces all baked; back (2) not.
    alphas = {}
    for face in range(6):
        uv, _ = _texel_of(target, face)
        s = tex_image(target).size[0]
        alphas[face] = int(tex[int((1 - uv[1]) * s), int(uv[0] * s), 3])
    record("face_alpha", alphas)
    record("report", _coverage_json("Target"))
    # The back face's texel holds the UV inpaint job's result there (the job ran on the
    # texture at its own size, 64 x 64; it is the last image the backend made).
    uv, _ = _texel_of(target, 2)
    ty, tx = int((1 - uv[1]) * 64), int(uv[0] * 64)
    record(
        "back_vs_fill_result", int(np.abs(tex[ty, tx, :3] - backend_images()[-1][1][ty, tx]).max())
    )
    record("job_records", job_records())
    record(
        "masked_content",
        {v: job_field(f"project {v}", "inpaint_fill") for v in ("View0", "View1", "View2")},
    )
    mask = pixels(bpy.data.images["Dreamwire inpaint mask"])[..., 0]
    record("mask_values", sorted({int(v) for v in np.unique(mask)}))
    record("status", bpy.context.window_manager.dreamwire_status.text)
    _colour_match_off(target, tex)


def _colour_match_off(target, matched):
    """The same multi-view run with colour matching off (same seeds, so the same images):
    only how later views are blended in differs."""
    s = bpy.context.scene.dreamwire
    record("colour_defaults", [s.colour_match, s.facing_exponent, s.edge_feather])
    s.colour_match = False
    res, err = run_op(lambda: bpy.ops.dreamwire.project_multiview())
    record("unmatched_error", err)
    plain = pixels(tex_image(target))
    both = (plain[..., 3] > 0) & (matched[..., 3] > 0)
    diff = np.abs(plain[..., :3] - matched[..., :3]).max(axis=-1)[both]
    record("match_changed_share", float((diff > 2).mean()))
    record("match_mean_diff", float(diff.mean()))


def _anim_scene():
    clear_scene()
    s = settings()
    s.depth.enabled = True
    target = cube("Mover", 0.8)
    target.location = (-1, 0, 0)
    target.keyframe_insert("location", frame=1)
    target.location = (1, 0, 0)
    target.keyframe_insert("location", frame=4)
    # A human metarig that walks the other way: the pose control follows it.
    import addon_utils

    # default_set: Blender 4.2's Rigify reads its own preferences in register(), which
    # exist only once the add-on is in the user preferences.
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.object
    rig.scale = (0.5, 0.5, 0.5)
    rig.location = (1.5, 1.0, -1.0)
    rig.keyframe_insert("location", frame=1)
    rig.location = (-1.5, 1.0, -1.0)
    rig.keyframe_insert("location", frame=4)
    s.pose.enabled = True
    cam = camera("Cam", (0, -7, 0.5))
    bpy.context.scene.camera = cam
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    s.output_dir = os.path.join(CONFIG["out"], "frames")
    return s


def sc_animation():
    s = _anim_scene()
    record("mode_default", s.animation_mode)
    s.animation_mode = "warp"
    folder = s.output_dir
    # First run: stop after the first frame is on disk (as an artist pressing Esc).
    a = addon()
    gen, n = a.actions.render_animation(bpy.context)
    drv = a.core.tasks.Driver(
        a.connection.CONN.ensure(bpy.context) and a.connection.CONN, gen, n, connect_timeout=60
    )
    t0 = time.monotonic()
    while not drv.done and not os.path.exists(os.path.join(folder, "frame_0001.png")):
        drv.tick()
        time.sleep(0.02)
        if time.monotonic() - t0 > 300:
            break
    drv.cancel()
    depth_frame1 = pixels(bpy.data.images["Dreamwire depth"])
    pose_frame1 = pixels(bpy.data.images["Dreamwire pose"])
    record("stopped_state", drv.status.state)
    record("after_stop", sorted(f for f in os.listdir(folder) if f.endswith(".png")))
    first_bytes = Path(os.path.join(folder, "frame_0001.png")).read_bytes()
    record("frame_after_stop", bpy.context.scene.frame_current)
    res, err = run_op(lambda: bpy.ops.dreamwire.render_animation())
    record("result", res)
    record("error", err)
    record("status", bpy.context.window_manager.dreamwire_status.text)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    record("files", files)
    record(
        "first_unchanged", Path(os.path.join(folder, "frame_0001.png")).read_bytes() == first_bytes
    )
    from dreamwire.shared.codec import decode_png

    frames = [
        decode_png(Path(os.path.join(folder, f)).read_bytes()).astype(np.int32) for f in files
    ]
    gens = [g for _, g in backend_images()]
    record(
        "frames_match_generated",
        [
            any(g.shape == fr[..., :3].shape and not np.abs(g - fr[..., :3]).any() for g in gens)
            for fr in frames
        ],
    )
    manifest = json.loads(Path(os.path.join(folder, "dreamwire_animation.json")).read_text())
    record("seed", manifest["seed"])
    record("depth_images", "Dreamwire depth" in bpy.data.images)
    # The depth sent for frame 3 is not frame 1's: the capture follows the animation.
    depth_last = pixels(bpy.data.images["Dreamwire depth"])
    record("depth_moved", int(np.abs(depth_last - depth_frame1).max()))
    pose_last = pixels(bpy.data.images["Dreamwire pose"])
    record("pose_pixels", int((pose_frame1[..., :3].max(axis=2) > 0).sum()))
    record("pose_moved", int((np.abs(pose_last - pose_frame1).max(axis=2) > 0).sum()))
    record("jobs", job_records())
    # Keyframes every 2nd frame into another folder: keys 1 and 3 generated, frame 2
    # blended from both (inpainted only where neither sees it).
    # A cube shown on frame 2 alone: neither key sees it, so frame 2 needs an inpaint, which
    # goes out as the in-betweens' group.
    flash = cube("Flash", 0.4, (0, -2, 0.5))
    for frame, hidden in ((1, True), (2, False), (3, True)):
        flash.hide_render = hidden
        flash.keyframe_insert("hide_render", frame=frame)
    s.animation_mode = "keyframes"
    s.key_every = 2
    s.output_dir = os.path.join(CONFIG["out"], "keys")
    res, err = run_op(lambda: bpy.ops.dreamwire.render_animation())
    bpy.data.objects.remove(flash)
    record("keys_result", [res, err])
    record("keys_files", sorted(f for f in os.listdir(s.output_dir) if f.endswith(".png")))
    record("jobs_after_keys", job_records())
    record("keys_in_between_jobs", job_priorities("frame 2"))
    s.frame_step = 2
    record("keys_step_error", run_op(lambda: bpy.ops.dreamwire.render_animation())[1])
    # AnimateDiff: the range as one job, depth and pose captured on every frame.
    s.frame_step = 1
    s.animation_mode = "animatediff"
    s.output_dir = os.path.join(CONFIG["out"], "animatediff")
    record("ad_no_module", run_op(lambda: bpy.ops.dreamwire.render_animation())[1])
    s.motion_module, s.context_length, s.context_stride = "tiny_mm_sd1", 2, 1
    res, err = run_op(lambda: bpy.ops.dreamwire.render_animation())
    record("ad_result", [res, err])
    record("ad_files", sorted(f for f in os.listdir(s.output_dir) if f.endswith(".png")))
    ad = job_field("animatediff", "animatediff")
    record("ad_job", ad and [ad["frames"], [len(c["images"]) for c in ad["controls"]]])
    # Fixed seed: every frame a job of its own (a fan-out, one in flight on this one-worker
    # backend); a frame deleted after the render is the only one made again.
    s.animation_mode = "fixed_seed"
    s.output_dir = os.path.join(CONFIG["out"], "fixed")
    before = job_records()
    record("fixed_result", run_op(lambda: bpy.ops.dreamwire.render_animation()))
    os.remove(os.path.join(s.output_dir, "frame_0002.png"))
    record("fixed_rerun", run_op(lambda: bpy.ops.dreamwire.render_animation()))
    record("fixed_status", bpy.context.window_manager.dreamwire_status.text)
    record("fixed_files", sorted(f for f in os.listdir(s.output_dir) if f.endswith(".png")))
    after = job_records()
    # The jobs the two runs added, by tag: [mode, seed, controls] and how many of each.
    record(
        "fixed_jobs",
        {
            t: [[*json.loads(k), n] for k, n in added.items()]
            for t in after
            if (added := _new_jobs(before.get(t, []), after[t]))
        },
    )
    record("frame_after_fixed", bpy.context.scene.frame_current)


def job_priorities(tag):
    """[mode, priority] of every job the backend recorded with `tag`."""
    out = []
    for dirpath, _, files in os.walk(CONFIG["backend_out"]):
        if "result.json" in files:
            rec = json.loads(Path(dirpath, "result.json").read_text())
            if rec["tag"] == tag:
                j = rec["job"]
                mode = (
                    "inpaint" if j.get("mask") else "img2img" if j.get("init_image") else "txt2img"
                )
                out.append([mode, j["priority"]])
    return sorted(out)


def job_field(tag, name):
    for dirpath, _, files in os.walk(CONFIG["backend_out"]):
        if "result.json" in files:
            rec = json.loads(Path(dirpath, "result.json").read_text())
            if rec["tag"] == tag:
                return rec["job"][name]
    return None


def job_infotext(tag):
    for dirpath, _, files in os.walk(CONFIG["backend_out"]):
        if "result.json" in files:
            rec = json.loads(Path(dirpath, "result.json").read_text())
            if rec["tag"] == tag:
                return rec["images"][0]["infotext"]
    return None


def _new_jobs(before: list, after: list) -> dict:
    """{job record as JSON: how many more there are in `after` than in `before`}."""
    from collections import Counter

    added = Counter(json.dumps(r) for r in after) - Counter(json.dumps(r) for r in before)
    return dict(added)


def job_records():
    """(tag, mode, seed, control types) of every job the backend recorded, by tag."""
    out = {}
    for dirpath, _, files in os.walk(CONFIG["backend_out"]):
        if "result.json" in files:
            rec = json.loads(Path(dirpath, "result.json").read_text())
            j = rec["job"]
            mode = "inpaint" if j.get("mask") else "img2img" if j.get("init_image") else "txt2img"
            out.setdefault(rec["tag"], []).append(
                [mode, j["seed"], [c["type"] for c in j["controls"]]]
            )
    return out


def sc_bad_inputs():
    clear_scene()
    settings()
    # No camera.
    obj = cube("Lonely", 1.0)
    select(obj)
    before = material_state()
    record("no_camera", run_op(lambda: bpy.ops.dreamwire.project())[1])
    # Nothing selected.
    cam = camera("Cam", (0, -6, 0))
    bpy.context.scene.camera = cam
    select()
    record("nothing_selected", run_op(lambda: bpy.ops.dreamwire.project())[1])
    # Mesh with no UVs for Generate texture; Project with UV creation off.
    select(obj)
    record("no_uvs_texture", run_op(lambda: bpy.ops.dreamwire.generate_texture())[1])
    bpy.context.scene.dreamwire.create_uvs = False
    record("no_uvs_project", run_op(lambda: bpy.ops.dreamwire.project())[1])
    bpy.context.scene.dreamwire.create_uvs = True
    # Unknown bone names with the pose control on.
    arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for i, name in enumerate(("foo", "bar")):
        b = arm.data.edit_bones.new(name)
        b.head, b.tail = (0, 0, i), (0, 0, i + 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.scene.dreamwire.pose.enabled = True
    select(obj)
    record("unknown_bones", run_op(lambda: bpy.ops.dreamwire.project())[1])
    bpy.context.scene.dreamwire.pose.enabled = False
    # Settings the backend cannot serve: said plainly before anything runs.
    bpy.context.scene.dreamwire.model = "no-such-model"
    bpy.context.scene.dreamwire.segmentation.enabled = True
    record("missing_on_backend", run_op(lambda: bpy.ops.dreamwire.project())[1])
    bpy.context.scene.dreamwire.model = ""
    bpy.context.scene.dreamwire.segmentation.enabled = False
    record("uv_layers_after_failures", len(obj.data.uv_layers))
    # Backend down: the address points at nothing.
    prefs = bpy.context.preferences.addons["bl_ext.user_default.dreamwire"].preferences
    prefs.address = CONFIG["dead_address"]
    prefs.timeout = 5
    t0 = time.monotonic()
    record("backend_down", run_op(lambda: bpy.ops.dreamwire.project())[1])
    record("backend_down_seconds", round(time.monotonic() - t0, 1))
    record("state_unchanged", material_state() == before)
    record("uv_layers_after_down", len(obj.data.uv_layers))
    # The same rig with per-bone overrides: its bones now stand for keypoints.
    s = bpy.context.scene.dreamwire
    prefs.address = CONFIG["address"]
    s.pose.enabled = True
    select(obj)
    for key, bone, end in (
        ("neck", "foo", "head"),
        ("nose", "bar", "tail"),
        ("right_shoulder", "bar", "head"),
    ):
        bpy.ops.dreamwire.bone_override_add()
        o = s.pose_overrides[-1]
        o.keypoint, o.bone, o.end = key, bone, end
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("override_result", [res, err])
    pose_img = bpy.data.images.get("Dreamwire pose")
    record(
        "override_pose_pixels",
        int((pixels(pose_img)[..., :3].max(axis=2) > 0).sum()) if pose_img else 0,
    )
    record("override_jobs", job_records().get("project Cam"))
    s.pose_overrides.clear()


def _face_mesh(name):
    """A flat face seen from the front: rings (n-gons, their rims the edges) for the oval,
    the person's left eye and the lips, each in its face_* vertex group."""
    rings = {
        "face_oval": (0.0, 0.0, 2.0, 2.4, 24),
        "face_left_eye": (0.7, 0.5, 0.35, 0.18, 8),
        "face_lips": (0.0, -1.1, 0.7, 0.25, 10),
    }
    verts, faces, groups = [], [], {}
    for group, (cx, cz, rx, rz, n) in rings.items():
        start = len(verts)
        angles = [2 * math.pi * i / n for i in range(n)]
        verts += [(cx + rx * math.cos(a), 0.0, cz + rz * math.sin(a)) for a in angles]
        faces.append(tuple(range(start, start + n)))
        groups[group] = list(range(start, start + n))
    obj = mesh_object(name, verts, faces)
    for group, members in groups.items():
        obj.vertex_groups.new(name=group).add(members, 1.0, "REPLACE")
    return obj


def sc_face():
    """The panel's Face control: Project captures the face mesh's face_* groups and its job
    carries them as a mediapipe_face unit; with no such mesh the action says what to add.
    (The job is taken from the action before it is sent: no backend.)"""
    clear_scene()
    s = settings(size=128)  # the annotator leaves out faces under 64 pixels
    s.depth.enabled = False
    s.face.enabled, s.face.weight = True, 0.6
    cam = camera("Cam", (0, -6, 0))
    bpy.context.scene.camera = cam
    head = _face_mesh("Head")
    select(head)
    drawn = draw_ui()["idle"]
    record("panel", [p for kind, p in drawn if kind == "path" and "face" in p])
    record("face_hint", [t for kind, t in drawn if kind == "label" and "face_oval" in t])
    a = addon()
    gen, _ = a.actions.project(bpy.context, [cam])
    job = next(gen)
    gen.close()
    record("units", [[u.type, u.preprocessor, round(u.weight, 3)] for u in job.controls])
    face = next((u.image for u in job.controls if u.type == "mediapipe_face"), None)
    if face is not None:
        colours, counts = np.unique(face.reshape(-1, 3), axis=0, return_counts=True)
        record(
            "face_colours", [[*map(int, c), int(n)] for c, n in zip(colours, counts, strict=True)]
        )
        record("face_shape", list(face.shape))
    record("face_image_stored", "Dreamwire face" in bpy.data.images)
    for group in list(head.vertex_groups):
        head.vertex_groups.remove(group)
    try:
        gen, _ = a.actions.project(bpy.context, [cam])
        next(gen)
        record("no_face", None)
    except a.core.tasks.ActionError as exc:
        record("no_face", str(exc))


def sc_backend_dies():
    clear_scene()
    s = settings(steps=int(CONFIG.get("steps", 40)), size=64)
    s.depth.enabled = True
    obj = cube("Victim", 1.0)
    cam = camera("Cam", (0, -6, 0))
    bpy.context.scene.camera = cam
    select(obj)
    before = material_state()
    a = addon()
    gen, n = a.actions.project(bpy.context)
    conn = a.connection.CONN
    conn.ensure(bpy.context)
    drv = a.core.tasks.Driver(
        conn, gen, n, connect_timeout=60, lost_timeout=float(CONFIG.get("lost_timeout", 6))
    )
    killed = False
    t0 = time.monotonic()
    while not drv.done and time.monotonic() - t0 < 300:
        drv.tick()
        if (
            not killed
            and drv.job_id is not None
            and drv.status.text not in ("Submitted", "Connecting to the backend")
        ):
            os.kill(int(CONFIG["backend_pid"]), 9)
            killed = True
            record("killed_during", drv.status.text)
        time.sleep(0.02)
    record("killed", killed)
    record("state", drv.status.state)
    record("message", drv.status.message)
    after = material_state()
    # Captured control images may be added; nothing else.
    record("materials_unchanged", after["materials"] == before["materials"])
    record("uv_layers", len(obj.data.uv_layers))
    record("texture", tex_image(obj) is not None)


def sc_remote():
    """CurveZMQ keys from the preferences: the listed key works, an unlisted one is refused."""
    clear_scene()
    settings()
    obj = mesh_object(
        "Wall", [(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)], [(0, 1, 2, 3)], uv=True
    )
    select(obj)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.dreamwire"].preferences
    prefs.server_public_key = CONFIG["server_key"]
    prefs.client_key_file = CONFIG["bad_client_key"]
    record("refused", run_op(lambda: bpy.ops.dreamwire.generate_texture())[1])
    record("refused_material", obj.active_material is not None)
    prefs.client_key_file = CONFIG["client_key"]
    res, err = run_op(lambda: bpy.ops.dreamwire.generate_texture())
    record("result", res)
    record("error", err)
    record("has_texture", tex_image(obj) is not None)


def sc_flux():
    """A Flux model picked in the panel takes Flux's settings; a texture through the backend
    with its Distilled CFG; what Flux cannot run is greyed out and refused."""
    clear_scene()
    s = settings()  # SD-like values: Euler a, CFG 5, 2 steps
    obj = mesh_object(
        "FluxWall", [(-1, 0, -1), (1, 0, -1), (1, 0, 1), (-1, 0, 1)], [(0, 1, 2, 3)], uv=True
    )
    select(obj)
    s.model = "tiny-flux"
    record("switched", [s.steps, round(s.cfg, 4), s.sampler, round(s.distilled_cfg, 4)])
    s.steps, s.distilled_cfg = 2, 2.5
    s.model = "tiny-flux"  # the same family again: the artist's values stay
    record("kept", [s.steps, round(s.distilled_cfg, 4)])
    s.seamless = True
    record("seamless_refused", run_op(lambda: bpy.ops.dreamwire.generate_texture())[1])
    s.seamless = False
    res, err = run_op(lambda: bpy.ops.dreamwire.generate_texture())
    record("result", [res, err])
    record("status", bpy.context.window_manager.dreamwire_status.text)
    record("job_distilled", job_field("texture FluxWall", "distilled_cfg"))
    record("job_controls", job_field("texture FluxWall", "controls"))
    record("infotext", job_infotext("texture FluxWall"))
    img = tex_image(obj)
    gen = backend_images()
    record("texture", list(img.size) if img is not None else None)
    record(
        "texture_equals_generated",
        img is not None and bool(gen) and int(np.abs(pixels(img)[..., :3] - gen[-1][1]).max()),
    )
    s.seamless = True
    drawn = draw_ui()["idle"]
    _edit_texture(s, obj)
    record("drawn", [name for kind, name in drawn if kind == "prop"])
    record("greyed", [name for kind, name in drawn if kind == "greyed"])
    record("labels", [t for kind, t in drawn if kind == "label"])
    s.model = "dreamshaper_8"  # back to SD: the values the panel had for it
    record("back", [s.steps, round(s.cfg, 4), s.sampler])
    record("sd_drawn", [name for kind, name in draw_ui()["idle"] if kind == "prop"])


def _edit_texture(s, obj):
    """Edit Texture: refused on the plain Flux model; on Kontext the texture goes out as
    an edit job and comes back as "<name> (Edited)", which the material's node then shows."""
    s.seamless = False
    source = tex_image(obj)
    record("edit_refused", run_op(lambda: bpy.ops.dreamwire.edit_texture())[1])
    s.model, s.prompt = "tiny-flux-kontext", "make it red"
    record("edit_greyed_on_kontext", "dreamwire.edit_texture" in _greyed())
    res, err = run_op(lambda: bpy.ops.dreamwire.edit_texture())
    record("edit_result", [res, err, bpy.context.window_manager.dreamwire_status.text])
    edited = tex_image(obj)
    tag = f"edit {source.name}"
    record("edit_job", [job_field(tag, "mode"), job_field(tag, "model")])
    gen = backend_images()
    record("edited", [source.name, edited.name, list(edited.size)])
    record("edited_equals_result", int(np.abs(pixels(edited)[..., :3] - gen[-1][1]).max()))
    record("source_kept", source.name in bpy.data.images)
    s.model, s.seamless = "tiny-flux", True


def _expected_side(cam, front, up):
    """The side a camera sees, judged here on its own (60 degrees up is top, within 45 of
    the front axis front, within 45 of the back back, else side)."""
    d = -np.array(cam.matrix_world)[:3, 2]  # the camera looks down its -Z
    d = -d / np.linalg.norm(d)  # from the object toward the camera
    elevation = math.degrees(math.asin(float(np.clip(d @ up, -1, 1))))
    if elevation >= 60:
        return "top"
    if elevation <= -60:
        return "bottom"
    h = d - (d @ up) * up
    az = math.degrees(math.acos(float(np.clip(h @ front / np.linalg.norm(h), -1, 1))))
    return "front" if az <= 45 else "back" if az >= 135 else "side"


def sc_autocams():
    """Add Cameras by Coverage, then Multi-view projection placing its own cameras (and
    keeping the artist's when listed), each view's prompt naming the side it sees."""
    clear_scene()
    s = settings()
    target = cube("Crate", 1.0)
    target.rotation_euler = (0.0, 0.0, math.pi)  # its front (local -Y) faces world +Y
    floor = mesh_object(
        "Floor", [(-8, -8, -1.5), (8, -8, -1.5), (8, 8, -1.5), (-8, 8, -1.5)], [(0, 1, 2, 3)]
    )
    bpy.context.view_layer.update()
    select(target)
    s.auto_camera_count = 4
    s.auto_camera_hemisphere = True
    res, err = run_op(lambda: bpy.ops.dreamwire.add_coverage_cameras())
    record("add_result", [res, err])
    coll = bpy.data.collections.get("Dreamwire Cameras")
    record(
        "collection_in_scene",
        coll is not None and coll.name in bpy.context.scene.collection.children,
    )
    added = [o for o in coll.objects if o.name.startswith("DW Coverage")] if coll else []
    record("added", sorted(o.name for o in added))
    record("listed", [i.camera.name for i in s.cameras if i.camera is not None])
    aims, heights = [], []
    for cam in added:
        m = np.array(cam.matrix_world)
        to_target = -m[:3, 3] / np.linalg.norm(m[:3, 3])  # the crate sits at the origin
        aims.append(float(-m[:3, 2] @ to_target))
        heights.append(float(m[2, 3]))
    record("aims", aims)
    record("heights", heights)
    record("visible", [cam.visible_get() for cam in added])
    record("floor_untouched", floor.active_material is None)
    drawn = draw_ui()["idle"]
    record("drawn", sorted({name for kind, name in drawn if kind in ("prop", "operator")}))

    # Multi-view with an empty list and automatic cameras: it places its own.
    s.cameras.clear()
    s.auto_cameras = True
    s.auto_camera_count = 3
    s.view_front = "facing the viewer"  # the phrases are the artist's to edit
    before = set(job_records())
    res, err = run_op(lambda: bpy.ops.dreamwire.project_multiview())
    record("auto_result", [res, err])
    auto = sorted(o.name for o in bpy.data.objects if o.name.startswith("DW Auto"))
    record("auto_cameras", auto)
    mw = np.array(target.matrix_world)
    front, up = mw[:3, :3] @ [0, -1, 0], mw[:3, :3] @ [0, 0, 1]
    phrases = {
        "front": "facing the viewer",
        "side": "side view",
        "back": "back view",
        "top": "top view",
        "bottom": "bottom view",
    }
    jobs = {}
    for tag in sorted(set(job_records()) - before):
        if not tag.startswith("project "):
            continue  # the unseen-texel fill's UV inpaint job: no camera, no view phrase
        cam = bpy.data.objects[tag[len("project ") :]]
        jobs[tag] = [job_field(tag, "prompt"), phrases[_expected_side(cam, front, up)]]
    record("auto_jobs", jobs)
    record("auto_textured", tex_image(target) is not None)

    # The artist's own camera, listed: used as it is, no camera placed; from world -Y it
    # sees the crate's back.
    own = camera("OwnCam", (0.0, -6.0, 0.0))
    s.cameras.add().camera = own
    before = set(job_records())
    res, err = run_op(lambda: bpy.ops.dreamwire.project_multiview())
    record("own_result", [res, err])
    record("own_jobs", {t: job_field(t, "prompt") for t in sorted(set(job_records()) - before)})
    record(
        "auto_after_own", sorted(o.name for o in bpy.data.objects if o.name.startswith("DW Auto"))
    )

    # Bad input: one clear message each, no camera added.
    n_cams = len([o for o in bpy.data.objects if o.type == "CAMERA"])
    select()
    bad = {"add_nothing": run_op(lambda: bpy.ops.dreamwire.add_coverage_cameras())[1]}
    s.cameras.clear()
    bad["auto_nothing"] = run_op(lambda: bpy.ops.dreamwire.project_multiview())[1]
    # A sheet facing the ground, with only the upper half allowed: nothing can see it.
    sheet = mesh_object("Sheet", [(-1, -1, 3), (-1, 1, 3), (1, 1, 3), (1, -1, 3)], [(0, 1, 2, 3)])
    select(sheet)
    bad["unseen"] = run_op(lambda: bpy.ops.dreamwire.add_coverage_cameras())[1]
    record("bad", bad)
    record("cameras_unchanged", len([o for o in bpy.data.objects if o.type == "CAMERA"]) == n_cams)


def _map_records(tag):
    """{map: (file, pixels)} of the maps the backend saved for the materials job `tag`."""
    from dreamwire.shared.codec import decode_png

    for dirpath, _, files in os.walk(CONFIG["backend_out"]):
        if "result.json" in files:
            rec = json.loads(Path(dirpath, "result.json").read_text())
            if rec["tag"] == tag:
                return {
                    i["map"]: decode_png(Path(dirpath, i["file"]).read_bytes())[..., :3]
                    for i in rec["images"]
                }
    return {}


def _linked_image(bsdf, socket):
    """(image name, colour space) of the image node feeding a BSDF input (through a
    Normal Map node: also its space)."""
    links = bsdf.inputs[socket].links
    if not links:
        return None
    node = links[0].from_node
    extra = []
    if node.type == "NORMAL_MAP":
        extra = [node.space]
        node = node.inputs["Color"].links[0].from_node
    return [node.image.name, node.image.colorspace_settings.name, *extra]


def _pbr_links(obj) -> dict:
    """What feeds the Principled BSDF's colour, roughness, metallic and normal inputs."""
    mat = obj.active_material
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    return {k: _linked_image(bsdf, k) for k in ("Base Color", "Roughness", "Metallic", "Normal")}


def sc_pbr_texture():
    """Generate Texture with PBR maps on a tiling texture: the maps come from the texture
    wrapped around its edges, cut back to its size, the normal map in tangent space."""
    clear_scene()
    s = settings()
    s.seamless = True
    s.pbr_maps = True
    s.pbr_normal = True
    obj = cube("Tile", 1.0)
    obj.data.uv_layers.new(name="UVMap")
    select(obj)
    res, err = run_op(lambda: bpy.ops.dreamwire.generate_texture())
    record("result", [res, err])
    record("links", _pbr_links(obj))
    maps = _map_records("maps Tile")
    record("maps_size", {m: list(a.shape[:2]) for m, a in maps.items()})
    # The albedo in Blender is the middle of the padded map the backend made.
    albedo = pixels(bpy.data.images["Dreamwire Tile albedo"])[..., :3]
    h, w = albedo.shape[:2]
    ph, pw = maps["albedo"].shape[:2]
    top, left = (ph - h) // 2, (pw - w) // 2
    record(
        "albedo_is_middle",
        int(np.abs(albedo - maps["albedo"][top : top + h, left : left + w]).max()),
    )
    record("texture_size", [h, w])


def sc_pbr():
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    target, _, cam = _project_scene()
    s = bpy.context.scene.dreamwire
    s.pbr_maps = True
    s.pbr_normal = True
    select(target)
    res, err = run_op(lambda: bpy.ops.dreamwire.project())
    record("result", res)
    record("error", err)
    record("links", _pbr_links(target))
    maps = _map_records("maps Cam")
    record("maps_sent_back", sorted(maps))
    record(
        "pngs",
        sorted(f for f in os.listdir(CONFIG["out"]) if f.startswith("Target_")),
    )
    scene = bpy.context.scene
    rot = np.array(cam.matrix_world.to_3x3())
    diffs = {m: [] for m in ("albedo", "roughness", "metallic", "normal")}
    wrong = []
    rng = np.random.default_rng(1)
    for _ in range(30):
        b = rng.dirichlet((1, 1, 1))
        uv, co = _texel_of(target, 0, b)
        if co[0] < 0.1 and co[2] < 0.1:
            continue  # behind the blocker
        ndc = world_to_camera_view(scene, cam, Vector(co))
        px, py = ndc.x * 64, (1 - ndc.y) * 64
        for m in diffs:
            tex = pixels(bpy.data.images[f"Dreamwire Target {m}"])
            size = tex.shape[0]
            got = tex[int((1 - uv[1]) * size), int(uv[0] * size), :3].astype(float)
            want = bilinear(maps[m].astype(float), px, py)
            if m == "normal":  # camera space -> the cube's (world: identity matrix)
                n = rot @ (want / 255 * 2 - 1)
                want = (n / np.linalg.norm(n) + 1) / 2 * 255
                wrong.append(float(np.abs(got - bilinear(maps[m].astype(float), px, py)).mean()))
            diffs[m].append(float(np.abs(got - want).mean()))
    record("map_diffs", {m: float(np.mean(v)) for m, v in diffs.items()})
    record("normal_unconverted_diff", float(np.mean(wrong)))


def _greyed():
    return [name for kind, name in draw_ui()["idle"] if kind == "greyed"]


def _recording(gen, jobs, results):
    """The action's generator, keeping every Job it yields and the result sent back."""
    try:
        job = next(gen)
        while True:
            jobs.append(job)
            result = yield job
            results.append(result)
            job = gen.send(result)
    except StopIteration as stop:
        return stop.value


def sc_grid():
    """Grid mode: four cameras around a cube, one job whose control images are the four
    captures tiled 2x2, its result split back and each cell baked onto the face it shows."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    clear_scene()
    s = settings(size=128)
    s.normals.enabled = True
    s.fill_distance, s.fill_inpaint = 0, False  # the views' own bake, as it left them
    s.grid_mode = True
    target = cube("Target", 1.0)
    cams = [
        # At different distances: the four views' captures differ (a cube looks the same
        # from every side), so a view in the wrong cell shows.
        camera(f"View{i}", ((5 + i) * math.sin(a), -(5 + i) * math.cos(a), 3.5))
        for i, a in enumerate(math.radians(d) for d in (0, 90, 180, 270))
    ]
    select(target)
    a = addon()
    gen, n = a.actions.project(bpy.context, cams)
    jobs, results = [], []
    conn = a.connection.CONN
    conn.ensure(bpy.context)
    drv = a.core.tasks.Driver(conn, _recording(gen, jobs, results), n, connect_timeout=60)
    t0 = time.monotonic()
    while not drv.done and time.monotonic() - t0 < 300:
        drv.tick()
        time.sleep(0.02)
    record("expected_jobs", n)
    record("state", [drv.status.state, drv.status.message])
    record("jobs", [[j.width, j.height, j.tag] for j in jobs])
    if not jobs:
        return
    # The captures of each camera at the cell size, made here on their own, tiled by hand.
    capture = sys.modules["bl_ext.user_default.dreamwire.capture"]
    caps = [
        capture.capture_all(bpy.context.scene, c, 64, 64, kinds=["depth", "normals"]) for c in cams
    ]
    sent = {}
    for kind, unit_type in (("depth", "depth"), ("normals", "normalbae")):
        rows = [np.concatenate([caps[r * 2][kind], caps[r * 2 + 1][kind]], axis=1) for r in (0, 1)]
        expect = np.concatenate(rows, axis=0).astype(np.int32)
        unit = next(u for u in jobs[0].controls if u.type == unit_type)
        got = unit.image.astype(np.int32)
        sent[unit_type] = [
            list(got.shape),
            int(np.abs(got - expect).max()) if got.shape == expect.shape else -1,
        ]
        # A view moved to another cell would not match: the cells differ from each other.
        record(f"{kind}_cells_differ", int(np.abs(expect[:64, :64] - expect[:64, 64:]).max()))
    record("sent", sent)
    record("depth_image", list(bpy.data.images["Dreamwire depth"].size))
    gen_img = results[0].images[0].image[..., :3].astype(float)
    img = tex_image(target)
    record("has_texture", img is not None)
    if img is None:
        return
    tex = pixels(img)
    size = img.size[0]
    scene = bpy.context.scene
    rng = np.random.default_rng(1)
    right, wrong, alphas = [], [], {}
    for i, cam in enumerate(cams):
        for _ in range(12):
            b = rng.dirichlet((2, 2, 2))
            uv, co = _texel_of(target, i, b)
            texel = tex[int((1 - uv[1]) * size), int(uv[0] * size)]
            ndc = world_to_camera_view(scene, cam, Vector(co))
            x, y = ndc.x * 64, (1 - ndc.y) * 64
            ox, oy = (i % 2) * 64, (i // 2) * 64
            right.append(float(np.abs(texel[:3] - bilinear(gen_img, ox + x, oy + y)).mean()))
            j = (i + 1) % 4  # the neighbouring cell: the split went wrong
            wx, wy = (j % 2) * 64, (j // 2) * 64
            wrong.append(float(np.abs(texel[:3] - bilinear(gen_img, wx + x, wy + y)).mean()))
    for face in range(6):
        uv, _ = _texel_of(target, face)
        alphas[face] = int(tex[int((1 - uv[1]) * size), int(uv[0] * size), 3])
    record("right_mean_diff", float(np.mean(right)))
    record("wrong_mean_diff", float(np.mean(wrong)))
    record("face_alpha", alphas)
    # Five cameras on a 2x2 layout: two grids; the second inpaints, in its one used cell,
    # what the first left uncovered, and keeps its empty cells.
    s.grid_layout = "2x2"
    # Earlier versions' blending (facing ratio squared, no edge feather), under which the
    # four side views leave part of the top covered: the second grid must keep that part.
    s.facing_exponent = 2.0
    s.edge_feather = 0
    cams.append(camera("Top", (0.5, -0.5, 7.0)))
    gen, n = a.actions.project(bpy.context, cams)
    jobs.clear()
    drv = a.core.tasks.Driver(conn, _recording(gen, jobs, []), n, connect_timeout=60)
    t0 = time.monotonic()
    while not drv.done and time.monotonic() - t0 < 300:
        drv.tick()
        time.sleep(0.02)
    record("five_state", [drv.status.state, drv.status.message, n])
    record("five_jobs", [[getattr(j.mode, "value", j.mode), j.width, j.height] for j in jobs])
    if len(jobs) == 2 and jobs[1].mask is not None:
        mask = np.asarray(jobs[1].mask)
        mask = mask[..., 0] if mask.ndim == 3 else mask
        record(
            "second_mask",
            [
                int(mask[:64, :64].max()),
                int(mask[:64, :64].min()),
                int(mask[:, 64:].max()),
                int(mask[64:].max()),
            ],
        )


def sc_train_collection():
    """Train LoRA from collection: a grey two-part collection beside a red cube outside it;
    the operator renders four turntable views and trains the tiny SD1 for two steps."""
    clear_scene()
    s = settings(steps=1, size=64)
    coll = bpy.data.collections.new("Robot")
    bpy.context.scene.collection.children.link(coll)
    grey = bpy.data.materials.new("grey")
    grey.diffuse_color = (0.5, 0.5, 0.5, 1.0)
    red = bpy.data.materials.new("red")
    red.use_nodes = True
    bsdf = red.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (1.0, 0.0, 0.0, 1.0)
    bsdf.inputs["Emission Color"].default_value = (1.0, 0.0, 0.0, 1.0)
    bsdf.inputs["Emission Strength"].default_value = 5.0
    parts = [cube("Body", 0.6), cube("Robot_Head.001", 0.3, (0, 0, 0.9))]
    for o in parts:
        bpy.context.scene.collection.objects.unlink(o)
        coll.objects.link(o)
    # Outside the collection, right where the side views look past the robot: hidden.
    outside = cube("Crate", 0.5, (3.0, 0.0, 0.3))
    outside.data.materials.append(red)
    light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    bpy.context.scene.collection.objects.link(light)
    s.train_collection = coll
    s.train_name = CONFIG["lora_name"]
    s.train_trigger = "zxbot"
    s.train_steps = 2
    s.train_views = 4
    import importlib

    tc = importlib.import_module("bl_ext.user_default.dreamwire.train_collection")
    res, err = run_op(lambda: bpy.ops.dreamwire.train_lora_collection())
    record("result", res)
    record("error", err)
    # The renders the operator sent, as it shows them.
    renders = [pixels(bpy.data.images[tc.VIEW_IMAGE.format(i + 1)]) for i in range(4)]
    record("render_shapes", [list(r.shape) for r in renders])
    record(
        "red_pixels",
        [int(((r[..., 0] > 150) & (r[..., 1] < 80) & (r[..., 2] < 80)).sum()) for r in renders],
    )
    record(
        "object_pixels",
        [int((np.abs(r[..., :3] - r[0, 0, :3]).max(-1) > 20).sum()) for r in renders],
    )
    record("crate_render_restored", not outside.hide_render)
    record("cameras_left", sorted(o.name for o in bpy.data.objects if o.type == "CAMERA"))
    st = bpy.context.window_manager.dreamwire_status
    record("status", [st.state, st.text])
    record("job", job_field(f"train {CONFIG['lora_name']}", "train_lora"))
    sample = bpy.data.images.get(tc.SAMPLE_IMAGE)
    record("sample", list(sample.size) if sample is not None else None)
    # Refused before anything renders: an empty collection, and too many views.
    s.train_collection = bpy.data.collections.new("Empty")
    record("empty", run_op(lambda: bpy.ops.dreamwire.train_lora_collection())[1])
    s.train_collection = coll
    s.train_views = 40
    record("too_many", run_op(lambda: bpy.ops.dreamwire.train_lora_collection())[1])


def main():
    try:
        install()
        globals()["sc_" + CONFIG["scenario"]]()
        OUT["ok"] = True
    except Exception:
        OUT["traceback"] = traceback.format_exc()
    with open(CONFIG["result"], "w") as f:
        json.dump(OUT, f, indent=1, default=str)


main()
