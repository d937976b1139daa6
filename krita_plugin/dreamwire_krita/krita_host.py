"""The thin Krita edge: read documents, selections and layers; write result layers.

Only Krita API calls live here; every decision (where, what size, which colours, which
name) is made by the plain-Python modules in `logic/`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from krita import Krita, Selection

from .logic import pixels
from .logic.geometry import Rect
from .logic.regions import PlanError


@dataclass
class DocInfo:
    width: int
    height: int
    model: str
    depth: str
    profile: str
    plan: pixels.ColourPlan


def active_document():
    doc = Krita.instance().activeDocument()
    if doc is None:
        raise PlanError("Open or create a document first.")
    return doc


def doc_info(doc) -> DocInfo:
    model, depth, profile = doc.colorModel(), doc.colorDepth(), doc.colorProfile()
    plan = pixels.colour_plan(model, depth, profile)
    if plan.refuse:
        raise PlanError(plan.refuse)
    return DocInfo(doc.width(), doc.height(), model, depth, profile, plan)


def canvas_rect(doc) -> Rect:
    return Rect(0, 0, doc.width(), doc.height())


def selection_rect(doc) -> Rect | None:
    """The selection's bounds; an empty Rect for a selection with nothing selected."""
    sel = doc.selection()
    if sel is None:
        return None
    return Rect(sel.x(), sel.y(), sel.width(), sel.height())


def read_selection(doc, rect: Rect) -> np.ndarray:
    sel = doc.selection()
    if sel is None:
        return np.full((rect.h, rect.w), 255, np.uint8)
    return pixels.mask_from_bytes(sel.pixelData(rect.x, rect.y, rect.w, rect.h), rect.w, rect.h)


class _Rgba8View:
    """The document (or a converted clone of it) in 8-bit sRGB RGBA, for reading."""

    def __init__(self, doc):
        self.doc = doc
        self.clone = None
        if doc_info(doc).plan.convert:
            self.clone = doc.clone()
            self.clone.setColorSpace(pixels.WIRE_MODEL, pixels.WIRE_DEPTH, pixels.WIRE_PROFILE)
        self.view = self.clone or doc
        self.view.refreshProjection()
        self.view.waitForDone()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.clone is not None:
            self.clone.close()

    def visible(self, rect: Rect) -> np.ndarray:
        data = self.view.pixelData(rect.x, rect.y, rect.w, rect.h)
        return pixels.bgra_to_rgba(data, rect.w, rect.h)

    def layer(self, unique_id: str, rect: Rect) -> np.ndarray:
        node = find_node(self.view, unique_id)
        if node is None:
            raise PlanError("A control layer was removed; unmark it or undo the deletion.")
        data = node.projectionPixelData(rect.x, rect.y, rect.w, rect.h)
        return pixels.bgra_to_rgba(data, rect.w, rect.h)


def read_visible(doc, rect: Rect) -> np.ndarray:
    with _Rgba8View(doc) as v:
        return v.visible(rect)


def read_layers(doc, ids: list[str], rect: Rect) -> dict[str, np.ndarray]:
    if not ids:
        return {}
    with _Rgba8View(doc) as v:
        return {i: v.layer(i, rect) for i in ids}


def iter_nodes(node):
    for child in node.childNodes():
        yield child
        yield from iter_nodes(child)


def find_node(doc, unique_id: str):
    for node in iter_nodes(doc.rootNode()):
        if node.uniqueId().toString() == unique_id:
            return node
    return None


def node_id(node) -> str:
    return node.uniqueId().toString()


def layer_svg(doc, unique_id: str) -> str | None:
    node = find_node(doc, unique_id)
    if node is not None and node.type() == "vectorlayer":
        return node.toSvg()
    return None


def annotation(doc, kind: str) -> bytes | None:
    if kind not in doc.annotationTypes():
        return None
    return bytes(doc.annotation(kind))


def set_annotation(doc, kind: str, description: str, data: bytes) -> None:
    doc.setAnnotation(kind, description, data)


# -- writing ----------------------------------------------------------------------------


def add_group(doc, name: str):
    group = doc.createGroupLayer(name)
    doc.rootNode().addChildNode(group, None)
    return group


def add_result_layer(
    doc, parent, name: str, rgba: np.ndarray, target: Rect, mask: np.ndarray | None
):
    """A new paint layer holding rgba at target; masked by a transparency mask if given.

    Pixels are written as 8-bit sRGB and the layer is then converted by Krita to the
    document's colour space, so 16-bit, float, greyscale and CMYK documents get results
    in their own space.
    """
    info = doc_info(doc)
    layer = doc.createNode(name, "paintlayer")
    parent.addChildNode(layer, None)
    if info.plan.convert:
        layer.setColorSpace(pixels.WIRE_MODEL, pixels.WIRE_DEPTH, pixels.WIRE_PROFILE)
    masked_kind = ""
    if mask is not None:
        masked_kind = _add_transparency_mask(doc, layer, mask, target)
        if not masked_kind:
            # No way to make a mask headless on Krita < 5.2: cut the layer's own alpha.
            rgba = rgba.copy()
            rgba[:, :, 3] = (rgba[:, :, 3].astype(np.uint16) * mask // 255).astype(np.uint8)
            masked_kind = "alpha"
    layer.setPixelData(pixels.rgba_to_bgra(rgba), target.x, target.y, target.w, target.h)
    if info.plan.convert:
        layer.setColorSpace(info.model, info.depth, info.profile)
    return layer, masked_kind


def _mask_selection(mask: np.ndarray, target: Rect):
    sel = Selection()
    sel.select(target.x, target.y, target.w, target.h, 255)
    sel.setPixelData(np.ascontiguousarray(mask).tobytes(), target.x, target.y, target.w, target.h)
    return sel


def _add_transparency_mask(doc, layer, mask: np.ndarray, target: Rect) -> str:
    sel = _mask_selection(mask, target)
    make = getattr(doc, "createTransparencyMask", None)
    if make is not None:  # Krita 5.2+
        tmask = make("Selection")
        tmask.setSelection(sel)
        layer.addChildNode(tmask, None)
        return "transparency mask"
    action = Krita.instance().action("add_new_transparency_mask")
    if action is None or not _shows(doc):
        return ""
    # Krita 5.1 only builds a mask from the current selection, through its own action.
    old_sel, old_node = doc.selection(), doc.activeNode()
    doc.setActiveNode(layer)
    doc.setSelection(sel)
    action.trigger()
    doc.waitForDone()
    made = any(c.type() == "transparencymask" for c in layer.childNodes())
    if old_sel is not None:
        doc.setSelection(old_sel)
    else:
        Krita.instance().action("deselect").trigger()
    if old_node is not None:
        doc.setActiveNode(old_node)
    return "transparency mask" if made else ""


def _shows(doc) -> bool:
    """Whether the document is open in a view (Krita's actions act on the active view)."""
    win = Krita.instance().activeWindow()
    view = win.activeView() if win is not None else None
    if view is None or view.document() is None:
        return False
    return view.document().rootNode().uniqueId() == doc.rootNode().uniqueId()


def refresh(doc) -> None:
    doc.refreshProjection()
    doc.waitForDone()
