"""Reading meshes and writing images and materials: the thin bpy edge of the actions.

Everything an action creates goes through a Rollback, so an action that fails or is
cancelled leaves no half-made material, image or UV map behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import bpy
import numpy as np

NODE_LABEL = "Dreamwire"


class Rollback:
    """Undo steps recorded while creating things; run unless `commit()` was called."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def add(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    def commit(self) -> None:
        self._undo.clear()

    def rollback(self) -> None:
        for fn in reversed(self._undo):
            # Something may already be gone (the artist deleted it meanwhile).
            with contextlib.suppress(
                ReferenceError, RuntimeError, KeyError, AttributeError, ValueError
            ):
                fn()
        self._undo.clear()


@dataclass
class MeshTris:
    name: str
    world: np.ndarray  # T x 3 x 3 world positions
    normals: np.ndarray  # T x 3 x 3 world normals (split normals, so flat/smooth shading holds)
    uvs: np.ndarray | None  # T x 3 x 2, the UV map named `uv_name`
    uv_name: str = ""


def is_mesh(obj) -> bool:
    return obj is not None and obj.type == "MESH"


def mesh_triangles(obj, depsgraph, uv_name: str | None = None, with_uv: bool = True) -> MeshTris:
    """World-space triangles of the evaluated object (modifiers applied)."""
    eval_obj = obj.evaluated_get(depsgraph)
    mesh = eval_obj.to_mesh()
    try:
        mesh.calc_loop_triangles()
        lt = mesh.loop_triangles
        n = len(lt)
        verts = np.empty(n * 3, np.int32)
        loops = np.empty(n * 3, np.int32)
        lt.foreach_get("vertices", verts)
        lt.foreach_get("loops", loops)
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3).astype(np.float64)
        nrm = np.empty(n * 9, np.float32)
        lt.foreach_get("split_normals", nrm)
        nrm = nrm.reshape(n, 3, 3).astype(np.float64)
        mw = np.array(obj.matrix_world, np.float64)
        world = co[verts].reshape(n, 3, 3) @ mw[:3, :3].T + mw[:3, 3]
        nmat = np.linalg.inv(mw[:3, :3]).T
        wn = nrm @ nmat.T
        wn /= np.maximum(np.linalg.norm(wn, axis=2, keepdims=True), 1e-12)
        uvs = None
        name = ""
        if with_uv and len(mesh.uv_layers):
            layer = mesh.uv_layers.get(uv_name) if uv_name else None
            layer = layer or active_render_uv(mesh)
            name = layer.name
            uv = np.empty(len(mesh.loops) * 2, np.float32)
            layer.data.foreach_get("uv", uv)
            uvs = uv.reshape(-1, 2)[loops].reshape(n, 3, 2).astype(np.float64)
        return MeshTris(obj.name, world, wn, uvs, name)
    finally:
        eval_obj.to_mesh_clear()


def active_render_uv(mesh):
    for layer in mesh.uv_layers:
        if layer.active_render:
            return layer
    return mesh.uv_layers.active or mesh.uv_layers[0]


def scene_triangles(scene, depsgraph, exclude: set[str] = frozenset()) -> np.ndarray:
    """World triangles of every visible mesh (the occluders)."""
    tris = []
    for obj in scene.objects:
        if obj.type != "MESH" or obj.name in exclude or not obj.visible_get():
            continue
        tris.append(mesh_triangles(obj, depsgraph, with_uv=False).world)
    return np.concatenate(tris) if tris else np.zeros((0, 3, 3))


def ensure_uvs(obj, rb: Rollback, create: bool) -> str:
    """The name of the object's render UV map, unwrapping it (Smart UV Project) if it has
    none and `create`; raises ValueError otherwise."""
    mesh = obj.data
    if len(mesh.uv_layers):
        return active_render_uv(mesh).name
    if not create:
        raise ValueError(f"'{obj.name}' has no UV map: unwrap it, or turn on 'Create missing UVs'.")
    layer = mesh.uv_layers.new(name="DreamwireUV")
    layer_name = layer.name
    rb.add(lambda: mesh.uv_layers.remove(mesh.uv_layers[layer_name]))
    mesh.uv_layers.active = layer
    view_layer = bpy.context.view_layer
    prev_active = view_layer.objects.active
    prev_mode = obj.mode
    with bpy.context.temp_override(
        active_object=obj, object=obj, selected_objects=[obj], selected_editable_objects=[obj]
    ):
        view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(island_margin=0.02)
        finally:
            bpy.ops.object.mode_set(mode=prev_mode if prev_mode != "EDIT" else "OBJECT")
    view_layer.objects.active = prev_active
    return layer_name


def output_dir(path: str) -> str:
    """Absolute output folder; a blend-relative path in an unsaved file goes to the temp dir."""
    if path.startswith("//") and not bpy.data.filepath:
        path = os.path.join(tempfile.gettempdir(), "dreamwire", path[2:])
    path = bpy.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    return path


def image_from_array(
    name: str, array: np.ndarray, rb: Rollback | None = None, non_color: bool = False
):
    """A new (or reused, same name) bpy image holding a top-row-first uint8 array."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    h, w = a.shape[:2]
    f = a.astype(np.float32) / 255.0
    if f.shape[2] == 3:
        f = np.concatenate([f, np.ones((h, w, 1), np.float32)], axis=2)
    img = bpy.data.images.get(name)
    if img is not None and (tuple(img.size) != (w, h) or img.source != "GENERATED"):
        img = None
    if img is None:
        img = bpy.data.images.new(name, w, h, alpha=True)
        if rb is not None:
            rb.add(lambda img=img: bpy.data.images.remove(img))
    if non_color:
        img.colorspace_settings.name = "Non-Color"
    img.pixels.foreach_set(np.ascontiguousarray(f[::-1]).ravel())
    img.update()
    return img


def image_to_array(img) -> np.ndarray:
    """H x W x 4 uint8, top row first."""
    w, h = img.size
    f = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(f)
    return np.clip(np.rint(f.reshape(h, w, 4)[::-1] * 255), 0, 255).astype(np.uint8)


def save_png(img, folder: str, filename: str) -> str:
    """Write the image as PNG into `folder` and point the image at that file."""
    path = os.path.join(folder, filename)
    img.filepath_raw = path
    img.file_format = "PNG"
    img.save()
    return path


def apply_texture(obj, img, uv_name: str, rb: Rollback):
    """Make `img` the base colour of the object's active material, creating the material
    (or an image node in it) as needed. Returns the material."""
    mat = obj.active_material
    created_mat = False
    if mat is None or (mat.users > 1 and _shared_with_others(mat, obj)):
        mat = bpy.data.materials.new(f"Dreamwire {obj.name}")
        created_mat = True
        rb.add(lambda m=mat: bpy.data.materials.remove(m))
        if obj.material_slots and obj.active_material_index < len(obj.material_slots):
            slot = obj.material_slots[obj.active_material_index]
            old = slot.material
            slot.material = mat
            rb.add(lambda s=slot, o=old: setattr(s, "material", o))
        else:
            obj.data.materials.append(mat)
            data = obj.data
            rb.add(lambda d=data: d.materials.pop(index=len(d.materials) - 1))
    if hasattr(mat, "use_nodes") and not mat.use_nodes:
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next((n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
        if not created_mat:
            rb.add(lambda n=bsdf: nt.nodes.remove(n))
        out = next((n for n in nt.nodes if n.type == "OUTPUT_MATERIAL"), None) or nt.nodes.new(
            "ShaderNodeOutputMaterial"
        )
        nt.links.new(bsdf.outputs[0], out.inputs[0])

    def our_node(node_type: str, bl_idname: str, anchor, dx: float):
        """The node we labelled before, or a new one `dx` to the left of `anchor`."""
        node = next((n for n in nt.nodes if n.type == node_type and n.label == NODE_LABEL), None)
        if node is None:
            node = nt.nodes.new(bl_idname)
            node.label = NODE_LABEL
            node.location = (anchor.location.x - dx, anchor.location.y)
            if not created_mat:
                rb.add(lambda n=node: nt.nodes.remove(n))
        return node

    tex = our_node("TEX_IMAGE", "ShaderNodeTexImage", bsdf, 400)
    uvn = our_node("UVMAP", "ShaderNodeUVMap", tex, 250)
    uvn.uv_map = uv_name
    nt.links.new(uvn.outputs[0], tex.inputs[0])
    old_image = tex.image
    tex.image = img
    if not created_mat:
        rb.add(lambda t=tex, i=old_image: setattr(t, "image", i))
    base = bsdf.inputs.get("Base Color") or bsdf.inputs[0]
    old_links = [(link.from_socket, link.to_socket) for link in base.links]
    nt.links.new(tex.outputs["Color"], base)
    if not created_mat:

        def undo_link(nt=nt, base=base, old=old_links):
            for link in list(base.links):
                nt.links.remove(link)
            for a, b in old:
                nt.links.new(a, b)

        rb.add(undo_link)
    return mat


# PBR map -> the Principled BSDF input its image node feeds ("normal" goes through a Normal
# Map node in object space: core/texturing/pbr_maps.py says why).
PBR_INPUTS = {"roughness": "Roughness", "metallic": "Metallic", "normal": "Normal"}


def apply_pbr_maps(
    mat, images: dict, uv_name: str, rb: Rollback, normal_space: str = "OBJECT"
) -> None:
    """Wire baked map images into `mat`'s Principled BSDF (after apply_texture made it):
    one Non-Color image node per map, labelled "Dreamwire <map>" so a rerun reuses it.
    `normal_space`: the Normal Map node's space (OBJECT for a projection's baked normals,
    TANGENT for a UV texture's own, which Marigold sees head-on)."""
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    uvn = next((n for n in nt.nodes if n.type == "UVMAP" and n.label == NODE_LABEL), None)

    def labelled(bl_idname: str, label: str, y: float, x: float):
        node = next((n for n in nt.nodes if n.label == label), None)
        if node is None:
            node = nt.nodes.new(bl_idname)
            node.label = label
            node.location = (bsdf.location.x - x, bsdf.location.y - y)
            rb.add(lambda n=node: nt.nodes.remove(n))
        return node

    for i, (name, socket) in enumerate(PBR_INPUTS.items(), 1):
        img = images.get(name)
        if img is None or bsdf.inputs.get(socket) is None:
            continue
        tex = labelled("ShaderNodeTexImage", f"{NODE_LABEL} {name}", 300 * i, 400)
        tex.image = img
        img.colorspace_settings.name = "Non-Color"
        if uvn is not None:
            uvn.uv_map = uv_name
            nt.links.new(uvn.outputs[0], tex.inputs[0])
        out = tex.outputs["Color"]
        if name == "normal":
            nm = labelled("ShaderNodeNormalMap", f"{NODE_LABEL} normal map", 300 * i, 200)
            nm.space = normal_space
            if normal_space == "TANGENT":
                nm.uv_map = uv_name
            nt.links.new(out, nm.inputs["Color"])
            out = nm.outputs["Normal"]
        old = [(link.from_socket, link.to_socket) for link in bsdf.inputs[socket].links]
        nt.links.new(out, bsdf.inputs[socket])

        def undo(nt=nt, sock=bsdf.inputs[socket], old=old):
            for link in list(sock.links):
                nt.links.remove(link)
            for a, b in old:
                nt.links.new(a, b)

        rb.add(undo)


def _shared_with_others(mat, obj) -> bool:
    for other in bpy.data.objects:
        if other is obj or other.type != "MESH":
            continue
        if any(s.material == mat for s in other.material_slots):
            return True
    return False
