"""The thin Krita edge: read documents, selections and layers; write result layers.

Only Krita API calls live here; every decision (where, what size, which colours, which
name) is made by the plain-Python modules in `logic/`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from krita import Krita, Selection
from PyQt5.QtCore import QTimer

from .logic import pixels
from .logic.geometry import Rect
from .logic.prompt_regions import LayerInfo
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


def wrap_around() -> bool:
    """Whether Krita's wrap-around mode (View > Wrap Around Mode, W) is on."""
    from .logic.tiling import WRAP_AROUND_ACTION

    action = Krita.instance().action(WRAP_AROUND_ACTION)
    return action is not None and action.isChecked()


def doc_key(doc) -> str:
    """The document's id for this session (its root node's)."""
    return doc.rootNode().uniqueId().toString()


def document_by_key(key: str):
    """The open document `doc_key` names, or None once it was closed."""
    for d in Krita.instance().documents():
        root = d.rootNode()
        if root is not None and root.uniqueId().toString() == key:
            return d
    return None


def is_open(doc) -> bool:
    """False once the artist closed the document (its wrapper then holds nothing)."""
    try:
        root = doc.rootNode()
    except RuntimeError:  # the wrapped C++ object is gone
        return False
    return root is not None and any(
        d.rootNode() is not None and d.rootNode().uniqueId() == root.uniqueId()
        for d in Krita.instance().documents()
    )


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


def read_active_layer(doc, rect: Rect) -> np.ndarray:
    """The active layer's pixels over `rect` (a group: what it shows), RGBA; what the
    canvas shows where there is none (a document a script opened without a view)."""
    node = doc.activeNode()
    if node is None or node_id(node) == node_id(doc.rootNode()):
        return read_visible(doc, rect)
    return read_layers(doc, [node_id(node)], rect)[node_id(node)]


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


def layer_infos(doc) -> list[LayerInfo]:
    """Every layer with its name and whether it shows (it and all groups above it)."""
    out: list[LayerInfo] = []

    def walk(node, shown: bool) -> None:
        for child in node.childNodes():
            visible = shown and bool(child.visible())
            out.append(LayerInfo(node_id(child), child.name(), visible))
            walk(child, visible)

    walk(doc.rootNode(), True)
    return out


def selected_layer_infos(doc) -> list[LayerInfo]:
    """The layers selected in the Layers docker of `doc`'s view (none without a view:
    a document a script opened)."""
    win = Krita.instance().activeWindow()
    view = win.activeView() if win is not None else None
    shown = view.document() if view is not None else None
    if shown is None or doc_key(shown) != doc_key(doc):
        return []
    return [LayerInfo(node_id(n), n.name(), bool(n.visible())) for n in view.selectedNodes()]


def top_level_paint_infos(doc) -> list[LayerInfo]:
    return [
        LayerInfo(node_id(n), n.name(), bool(n.visible()))
        for n in doc.rootNode().childNodes()
        if n.type() == "paintlayer"
    ]


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


def add_paint_layer(doc, name: str):
    """A new, fully transparent paint layer above the active layer (at the top when none
    is active), made the active layer so the artist can paint on it at once."""
    return insert_above_active(doc, doc.createNode(name, "paintlayer"))


def insert_above_active(doc, layer):
    """`layer` into the document above the active layer (on top when none is active), made
    the active layer: one undo step."""
    add_above_active(doc, layer)
    doc.setActiveNode(layer)
    refresh(doc)
    return layer


def add_above_active(doc, node) -> None:
    """Add `node` right above the active layer (at the top when none is active)."""
    active = doc.activeNode()
    parent = active.parentNode() if active is not None else None
    if parent is None:
        doc.rootNode().addChildNode(node, None)
    else:
        parent.addChildNode(node, active)


def add_result_layer(
    doc,
    parent,
    name: str,
    rgba: np.ndarray,
    target: Rect,
    mask: np.ndarray | None,
    on_masked=None,
    above=None,
):
    """A new paint layer holding rgba at target, limited to `mask` when one is given.

    Pixels are written as 8-bit sRGB and the layer is then converted by Krita to the
    document's colour space, so 16-bit, float, greyscale and CMYK documents get results
    in their own space.

    The mask becomes a transparency mask where Krita lets a script make one: directly on
    Krita 5.2+, through Krita's own action when the document is open in a view (that
    takes a few turns of the event loop: `on_masked(kind)` reports the outcome, and the
    layer stays hidden until then). Otherwise (5.1 without a view) the mask is cut into
    the layer's alpha. Either way the pixels under the layer are never touched.
    Returns (layer, kind) with kind "transparency mask", "alpha", "pending" or "".

    Undo: the layer is filled (and masked, on 5.2+) before it enters the document, so it
    arrives in one undo step ("Add Layer") that takes it away whole. On 5.1 the mask made
    through Krita's action is a second step (the manual's Undo paragraph).
    """
    layer, kind = result_layer(doc, name, rgba, target, mask)
    parent.addChildNode(layer, above)  # `above`: the sibling it goes over (a layer stack)
    return layer, start_mask(doc, layer, kind, rgba, mask, target, on_masked)


def result_layer(doc, name: str, rgba: np.ndarray, target: Rect, mask: np.ndarray | None):
    """The result layer, filled but not yet in the document: (layer, kind), kind as
    add_result_layer's, or "action" when start_mask must make the mask once it is in."""
    layer = doc.createNode(name, "paintlayer")
    if mask is None:
        _write(doc, layer, rgba, target)
        return layer, ""
    make = getattr(doc, "createTransparencyMask", None)
    if make is not None:  # Krita 5.2+
        _write(doc, layer, rgba, target)
        tmask = make("Selection")
        tmask.setSelection(_mask_selection(mask, target))
        layer.setChildNodes([tmask])  # before the layer enters: no undo step of its own
        return layer, "transparency mask"
    if Krita.instance().action("add_new_transparency_mask") is not None and _shows(doc):
        # Fully transparent until the mask is there, so nothing unmasked ever shows.
        _write(doc, layer, _cut_alpha(rgba, np.zeros_like(mask)), target)
        return layer, "action"
    _write(doc, layer, _cut_alpha(rgba, mask), target)
    return layer, "alpha"


def start_mask(doc, layer, kind: str, rgba, mask, target: Rect, on_masked) -> str:
    """Once a result layer is in the document: start Krita's mask action where
    result_layer left it to (returns "pending"); otherwise the kind as it was."""
    if kind != "action":
        return kind
    _MaskByAction(doc, layer, rgba, mask, target, on_masked).start()
    return "pending"


class ResultGroup:
    """Result layers gathered in a group that enters the document when they are all made:
    one undo step ("Add Layer") takes the whole job's results away again. Children are
    given to the detached group with setChildNodes, which records no steps of its own."""

    def __init__(self, doc, name: str):
        self.doc = doc
        self.group = doc.createGroupLayer(name)
        self.children: list = []  # bottom first
        self._masks: list = []

    def add(self, name: str, rgba, target: Rect, mask=None, on_masked=None):
        layer, kind = result_layer(self.doc, name, rgba, target, mask)
        self.children.append(layer)
        if kind == "action":
            self._masks.append((layer, rgba, mask, target, on_masked))
            kind = "pending"
        return layer, kind

    def add_node(self, node) -> None:
        self.children.append(node)

    def insert(self, parent=None):
        self.group.setChildNodes(self.children)
        (parent or self.doc.rootNode()).addChildNode(self.group, None)
        for layer, rgba, mask, target, on_masked in self._masks:
            start_mask(self.doc, layer, "action", rgba, mask, target, on_masked)
        return self.group


def _write(doc, layer, rgba: np.ndarray, target: Rect) -> None:
    info = doc_info(doc)
    if info.plan.convert:
        layer.setColorSpace(pixels.WIRE_MODEL, pixels.WIRE_DEPTH, pixels.WIRE_PROFILE)
    layer.setPixelData(pixels.rgba_to_bgra(rgba), target.x, target.y, target.w, target.h)
    if info.plan.convert:
        layer.setColorSpace(info.model, info.depth, info.profile)


def _cut_alpha(rgba: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    out[:, :, 3] = (rgba[:, :, 3].astype(np.uint16) * mask // 255).astype(np.uint8)
    return out


def _mask_selection(mask: np.ndarray, target: Rect):
    sel = Selection()
    sel.select(target.x, target.y, target.w, target.h, 255)
    sel.setPixelData(np.ascontiguousarray(mask).tobytes(), target.x, target.y, target.w, target.h)
    return sel


# Why the last transparency masks could not be made (for logs and tests).
mask_notes: list[str] = []


_mask_makers: set = set()


class _MaskByAction:
    """Krita 5.1 makes a transparency mask only from the current selection, for the
    active layer, through its own action. The view activates new layers through queued
    signals, so each stage waits for a turn of the event loop instead of forcing one."""

    TRIES = 20
    SETTLE_MS = 500
    pending = 0  # masks still being made, across documents

    def __init__(self, doc, layer, rgba, mask, target, on_done):
        self.doc, self.layer, self.rgba, self.mask, self.target = doc, layer, rgba, mask, target
        self.on_done = on_done
        self.tries = 0
        self.old_sel = None
        self.old_node = None

    def start(self) -> None:
        # PyQt holds timer callbacks weakly: keep this object alive until it is done.
        _mask_makers.add(self)
        _MaskByAction.pending += 1
        # Activating a layer before the view has made its own record of it blocks Krita.
        QTimer.singleShot(self.SETTLE_MS, self._activate)

    def _activate(self) -> None:
        try:
            self.doc.setActiveNode(self.layer)
            QTimer.singleShot(20, self._trigger)
        except Exception as exc:  # the document was closed meanwhile
            self._finish("", f"activate failed: {exc}")

    def _trigger(self) -> None:
        try:
            active = self.doc.activeNode()
            if active is None or active.uniqueId() != self.layer.uniqueId():
                self.tries += 1
                if self.tries > self.TRIES:
                    self._fallback("the result layer never became active")
                    return
                QTimer.singleShot(20, self._activate)
                return
            self.old_sel = self.doc.selection()
            self.doc.setSelection(_mask_selection(self.mask, self.target))
            Krita.instance().action("add_new_transparency_mask").trigger()
            QTimer.singleShot(20, self._check)
        except Exception as exc:
            self._fallback(f"trigger failed: {exc}")

    def _check(self) -> None:
        self.doc.waitForDone()
        made = any(c.type() == "transparencymask" for c in self.layer.childNodes())
        if made:
            _write(self.doc, self.layer, self.rgba, self.target)
        if self.old_sel is not None:
            self.doc.setSelection(self.old_sel)
        else:
            Krita.instance().action("deselect").trigger()
        if made:
            self._finish("transparency mask")
        else:
            self._fallback(
                f"no mask after the action; children {[c.type() for c in self.layer.childNodes()]}"
            )

    def _fallback(self, why: str) -> None:
        try:
            _write(self.doc, self.layer, _cut_alpha(self.rgba, self.mask), self.target)
        except Exception as exc:
            why += f"; alpha cut failed: {exc}"
        self._finish("alpha", why)

    def _finish(self, kind: str, why: str = "") -> None:
        if why:
            mask_notes.append(why)
        # Report before counting down: refresh() turns the event loop, and whoever watches
        # masks_pending() must find the outcome already recorded.
        if self.on_done is not None:
            self.on_done(kind)
        _MaskByAction.pending -= 1
        _mask_makers.discard(self)
        with contextlib.suppress(Exception):  # the document may be gone by now
            refresh(self.doc)


def masks_pending() -> int:
    return _MaskByAction.pending


_keepers: set = set()


class KeepActive:
    """Leaves the artist's active layer active across insertions (results, the Live
    preview, applied layers), so the next stroke lands where they expect.

    Krita's view may activate a new layer through queued signals, and a transparency mask
    made through Krita's action needs its layer active for a while: so the artist's layer
    is put back at once and again over the next turns of the event loop, but only while
    the active layer is one this insertion added (or inside one): a layer the artist
    picks meanwhile is left alone."""

    ROUNDS = 8
    EVERY_MS = 150

    def __init__(self, doc):
        self.doc = doc
        node = doc.activeNode()
        self.keep = node_id(node) if node is not None else None
        self.added: set[str] = set()
        self.rounds = 0

    def add(self, node_or_id) -> None:
        self.added.add(node_or_id if isinstance(node_or_id, str) else node_id(node_or_id))

    def finish(self) -> None:
        if self.keep is None or not self.added:
            return
        self._restore()
        _keepers.add(self)  # PyQt holds timer callbacks weakly
        QTimer.singleShot(self.EVERY_MS, self._tick)

    def _tick(self) -> None:
        try:
            if not masks_pending():  # the mask maker needs its layer active until done
                self._restore()
                self.rounds += 1
        except Exception:  # the document was closed meanwhile
            self.rounds = self.ROUNDS
        if self.rounds < self.ROUNDS:
            QTimer.singleShot(self.EVERY_MS, self._tick)
        else:
            _keepers.discard(self)

    def _restore(self) -> None:
        active = self.doc.activeNode()
        if active is None or node_id(active) == self.keep:
            return
        node = active
        while node is not None:
            if node_id(node) in self.added:
                keep = find_node(self.doc, self.keep)
                if keep is not None:
                    self.doc.setActiveNode(keep)
                return
            node = node.parentNode()


def in_a_view(doc) -> bool:
    """Whether some window shows the document (Krita 5.1 crashes on vector shapes added
    to a document no view shows, as a script's may be)."""
    key = doc_key(doc)
    return any(
        v.document() is not None and doc_key(v.document()) == key
        for w in Krita.instance().windows()
        for v in w.views()
    )


def _shows(doc) -> bool:
    """Whether the document is open in the active view (Krita's actions act on it)."""
    win = Krita.instance().activeWindow()
    view = win.activeView() if win is not None else None
    if view is None or view.document() is None:
        return False
    return view.document().rootNode().uniqueId() == doc.rootNode().uniqueId()


def scale_document(doc, width: int, height: int) -> None:
    """Scale the image (every layer) to width x height, keeping its resolution."""
    if (doc.width(), doc.height()) == (width, height):
        return
    doc.scaleImage(width, height, int(doc.xRes()), int(doc.yRes()), "Bicubic")
    doc.waitForDone()


def refresh(doc) -> None:
    doc.refreshProjection()
    doc.waitForDone()


# -- Live mode ---------------------------------------------------------------------------

LIVE_THUMB = 256  # the longer side of the thumbnails live mode compares


def layer_samples(doc, size: int = LIVE_THUMB) -> list:
    """Each top-level layer as a small thumbnail with its blending (logic/live.py
    fingerprint): cheap enough for every tick, and a group's shows its contents."""
    from .logic.live import LayerSample

    w, h = doc.width(), doc.height()
    scale = min(1.0, size / max(w, h, 1))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    out = []
    for node in doc.rootNode().childNodes():
        img = node.thumbnail(tw, th)
        ptr = img.constBits()
        ptr.setsize(img.byteCount())
        out.append(
            LayerSample(
                node_id(node), bool(node.visible()), node.opacity(), node.blendingMode(), bytes(ptr)
            )
        )
    return out


def set_visible(doc, unique_id: str | None, visible: bool) -> bool:
    """Show or hide a layer; True when it was visible before."""
    node = find_node(doc, unique_id) if unique_id else None
    if node is None:
        return False
    was = bool(node.visible())
    if was != visible:
        node.setVisible(visible)
    return was


def write_preview_layer(
    doc, unique_id: str | None, name: str, rgba, target: Rect, mask, old_target: Rect | None
) -> str:
    """Put `rgba` at `target` in the one preview layer, made on top when missing; what an
    earlier result left elsewhere is cleared. Returns the layer's id."""
    layer = find_node(doc, unique_id) if unique_id else None
    if layer is None:
        layer = doc.createNode(name, "paintlayer")
        doc.rootNode().addChildNode(layer, None)  # None: on top
        old_target = None
    if old_target is not None and old_target != target:
        clear = np.zeros((old_target.h, old_target.w, 4), np.uint8)
        o = old_target
        layer.setPixelData(pixels.rgba_to_bgra(clear), o.x, o.y, o.w, o.h)
    _write(doc, layer, rgba if mask is None else _cut_alpha(rgba, mask), target)
    refresh(doc)
    return node_id(layer)


def remove_node(doc, unique_id: str | None) -> None:
    node = find_node(doc, unique_id) if unique_id else None
    if node is not None:
        node.remove()
        refresh(doc)


def add_layer_above(doc, unique_id: str | None, name: str, rgba, target: Rect, mask) -> str:
    """A new paint layer right above the layer `unique_id` (on top when it is gone), the
    mask cut into its alpha: one plain layer beside the one the artist paints on."""
    layer = doc.createNode(name, "paintlayer")
    node = find_node(doc, unique_id) if unique_id else None
    parent = node.parentNode() if node is not None else None
    if parent is None:
        doc.rootNode().addChildNode(layer, None)
    else:
        parent.addChildNode(layer, node)
    _write(doc, layer, rgba if mask is None else _cut_alpha(rgba, mask), target)
    refresh(doc)
    return node_id(layer)


def add_layer_below(doc, unique_id: str, name: str, rgba, target: Rect, mask) -> str:
    """A new paint layer right below the layer `unique_id` (on top when it is gone)."""
    layer = doc.createNode(name, "paintlayer")
    node = find_node(doc, unique_id)
    parent = node.parentNode() if node is not None else None
    if parent is None:
        doc.rootNode().addChildNode(layer, None)
    else:
        siblings = parent.childNodes()
        ids = [node_id(n) for n in siblings]
        at = ids.index(unique_id)
        # addChildNode places the new node above the one given: the one below the preview.
        # (With nothing below the preview, the new layer goes on top.)
        parent.addChildNode(layer, siblings[at - 1] if at > 0 else None)
    _write(doc, layer, rgba if mask is None else _cut_alpha(rgba, mask), target)
    refresh(doc)
    return node_id(layer)


def draw_labels(rgba: np.ndarray, labels: list[tuple[Rect, str]], line: int) -> np.ndarray:
    """`rgba` with each label's text drawn black, centred in its box (Qt's text: the
    plugin ships no font renderer of its own); `line` is one text line's height."""
    from PyQt5.QtCore import QRect, Qt
    from PyQt5.QtGui import QColor, QFont, QImage, QPainter

    h, w = rgba.shape[:2]
    buf = np.ascontiguousarray(rgba).copy()
    image = QImage(buf.data, w, h, w * 4, QImage.Format_RGBA8888)
    painter = QPainter(image)
    try:
        font = QFont()
        font.setPixelSize(max(8, line // 2))
        painter.setFont(font)
        painter.setPen(QColor(0, 0, 0))
        flags = int(Qt.AlignCenter) | int(Qt.TextWordWrap)
        for box, text in labels:
            painter.drawText(QRect(box.x, box.y, box.w, box.h), flags, text)
    finally:
        painter.end()
    return np.frombuffer(image.constBits().asstring(h * w * 4), np.uint8).reshape(h, w, 4).copy()


def replace_selection(doc, data: bytes, rect: Rect) -> None:
    """The selection becomes `data` (8-bit, rect's size) over `rect`."""
    sel = Selection()
    sel.select(rect.x, rect.y, rect.w, rect.h, 255)
    sel.setPixelData(data, rect.x, rect.y, rect.w, rect.h)
    doc.setSelection(sel)


def read_layer_and_canvas_without_it(doc, unique_id: str | None, rect: Rect):
    """A layer's pixels (`None`: the active layer's) and the canvas as shown without it,
    both over `rect`: the click dots stay out of the picture SAM 2 sees."""
    node = find_node(doc, unique_id) if unique_id else doc.activeNode()
    if node is None or node_id(node) == node_id(doc.rootNode()):
        raise PlanError("Select by clicking: paint dots on a layer named 'clicks'.")
    dots = read_layers(doc, [node_id(node)], rect)[node_id(node)]
    if not node.visible():
        return dots, read_visible(doc, rect)
    node.setVisible(False)
    try:
        refresh(doc)
        return dots, read_visible(doc, rect)
    finally:
        node.setVisible(True)
        refresh(doc)


def resource_dir() -> str:
    """Krita's resource folder (Settings > Configure Krita > Resources: "Resource Folder",
    the kritarc key Krita itself reads), else its default: the writable AppDataLocation."""
    from PyQt5.QtCore import QStandardPaths

    chosen = Krita.instance().readSetting("", "ResourceDirectory", "")
    return chosen or QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)


# -- depth library (logic/depth_library.py) -----------------------------------------------


def active_chain(doc) -> list:
    """The active node and its parents up to (not including) the root, as NodeInfo."""
    from .logic.depth_library import NodeInfo

    root = node_id(doc.rootNode())
    out = []
    node = doc.activeNode()
    while node is not None and node_id(node) != root:
        out.append(NodeInfo(node_id(node), node.type()))
        node = node.parentNode()
    return out


def place_depth(doc, target, name: str, group_name: str, blending: str, rgba, rect: Rect) -> str:
    """Put a placed depth map (rgba over rect) where `target` says; returns the id of the
    layer that now holds the depth control. The map's layer is filled before it joins the
    document, so adding it is Krita's one undoable step (scripted pixel writes are not
    undoable in Krita 5.1); `blending` composites it by max with what lies under it."""
    layer = doc.createNode(name, "paintlayer")
    _write(doc, layer, rgba, rect)
    layer.setBlendingMode(blending)
    node = find_node(doc, target.node_id) if target.node_id else None
    if target.kind == "group" and node is not None:
        node.addChildNode(layer, None)  # None: on top of the group
        refresh(doc)
        return node_id(node)
    if target.kind == "merge" and node is not None:
        parent = node.parentNode()
        at = [node_id(n) for n in parent.childNodes()].index(node_id(node))
        parent.addChildNode(layer, node)
        doc.waitForDone()
        layer.mergeDown()  # the merged layer is a new node in the old one's place
        doc.waitForDone()
        merged = parent.childNodes()[at]
        doc.setActiveNode(merged)
        refresh(doc)
        return node_id(merged)
    group = doc.createGroupLayer(group_name)
    group.addChildNode(layer, None)
    add_above_active(doc, group)
    refresh(doc)
    return node_id(group)
