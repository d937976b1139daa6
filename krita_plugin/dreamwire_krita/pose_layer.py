"""The pose template on a Krita vector layer: add a body, keep its limbs on its joints.

Undo: a new pose layer is two undo steps, "Add Layer" and "Create shapes" (Krita
AI Diffusion's way; a layer built in a scratch document and copied in would be one step, but
Krita 5.1's node manager then misses its shapes and crashed in our tests), a person added
to an existing pose layer one ("Create shapes"). Limbs follow dragged joints through
Shape.setTransformation, which Krita records no undo step for: the artist's Ctrl+Z undoes
their own drags, and the limbs follow the joints back. Decisions live in
logic/pose_template.py.
"""

from __future__ import annotations

import time

from krita import Krita
from PyQt5.QtGui import QTransform

from . import krita_host as host
from .logic import pose_template as tpl
from .logic.geometry import Rect
from .logic.pose import parse_id
from .logic.regions import PlanError

LAYER_NAME = "Pose"
FOLLOW_EVERY_S = 0.5  # Krita AI Diffusion's pose timer


def is_pose_layer(node) -> bool:
    """A vector layer holding template shapes (ids P00_J00 ...)."""
    if node is None or node.type() != "vectorlayer":
        return False
    return any(parse_id(s.name()) is not None for s in node.shapes())


def add_pose(doc, box: Rect | None):
    """A standing body in `box` (None: the canvas). Onto the active layer when it is a
    pose layer already (one more person), else on a new pose layer above the active one,
    made active so the shape tool drags its joints. Returns (layer, made a new layer)."""
    if not host.in_a_view(doc):
        raise PlanError("Open the document in a window first: poses are vector shapes.")
    canvas = host.canvas_rect(doc)
    w, h, xres = doc.width(), doc.height(), doc.xRes()
    active = doc.activeNode()
    if is_pose_layer(active):
        svg = active.toSvg()
        slot = 0 if box is not None else tpl.slot_count(svg, w, h)
        person = tpl.next_person(svg, w, h)
        body = tpl.standing_body(box or canvas, slot)
        active.addShapesFromSvg(tpl.person_svg(person, body, canvas, xres))
        host.refresh(doc)
        return active, False
    svg = tpl.person_svg(0, tpl.standing_body(box or canvas), canvas, xres)
    layer = host.insert_above_active(doc, doc.createVectorLayer(LAYER_NAME))
    layer.addShapesFromSvg(svg)
    host.refresh(doc)
    return layer, True


def follow(doc, layer) -> int:
    """Move the limbs whose joints moved back onto them; how many moved."""
    if layer is None or not host.in_a_view(doc):
        return 0
    stale = tpl.stale_bones(layer.toSvg(), doc.width(), doc.height())
    if not stale:
        return 0
    shapes = {s.name(): s for s in layer.shapes()}
    pt_per_px = 72.0 / doc.xRes()
    for f in stale:
        shape = shapes.get(f.name)
        if shape is not None:
            shape.setTransformation(
                QTransform(*tpl.krita_bone_transform(f.a, f.b, f.stick, pt_per_px))
            )
            shape.update()
    return len(stale)


class Follower:
    """Krita AI Diffusion's pose timer: every half second, the active pose layer's limbs
    follow its joints (cheap: one SVG of a few dozen shapes, and only for a pose layer)."""

    def __init__(self) -> None:
        self.last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last < FOLLOW_EVERY_S:
            return
        self.last = now
        doc = Krita.instance().activeDocument()
        node = doc.activeNode() if doc is not None else None
        if is_pose_layer(node):
            follow(doc, node)
