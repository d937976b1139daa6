"""The results of this session and of the open documents: the history the docker lists,
and results waiting as previews to apply or discard (Krita AI Diffusion's history).

The entries, their thumbnails and what a document saves are logic/history.py's; this is the
part that writes the preview layer, applies an entry as layers and keeps each document's
saved history in step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import krita_host as host
from .logic import history as hist
from .logic import jobs, naming
from .logic.geometry import Rect
from .logic.history import Entry, History, params_from_infotext
from .logic.params import Params
from .logic.regions import PlanError
from .logic.session import Pending

if TYPE_CHECKING:
    from .controller import Controller


@dataclass
class ShownPreview:
    """The history entry the preview layer shows, and where."""

    doc_key: str
    node_id: str
    key: str  # the entry's
    target: Rect
    artist_layer: str | None  # the layer active before the preview came: active again after


class ResultHistory:
    def __init__(self, owner: Controller):
        self.owner = owner
        self.history = History()
        # On (the docker's setting), generate/refine/inpaint results wait in the history as
        # previews to apply or discard; off (scripts), they land as layers at once.
        self.previews_on = False
        self.shown: ShownPreview | None = None  # the result in the preview layer
        self.loaded_docs: set[str] = set()  # documents whose saved history is merged in

    def entry(self, pending: Pending, gen, rgba: np.ndarray, doc, applied: bool) -> Entry:
        name = naming.layer_name(pending.params.prompt, gen.seed, pending.plan.action)
        return Entry(
            rgba,
            gen.seed,
            gen.infotext,
            pending.params,
            pending.plan,
            pending.mask,
            name,
            job_id=pending.job_id,
            applied=applied,
            doc_key=host.doc_key(doc) if host.is_open(doc) else "",
        )

    def remember(self, pending: Pending, gen, rgba: np.ndarray, doc=None, applied=False) -> None:
        self.history.add(self.entry(pending, gen, rgba, doc or pending.doc_key, applied))
        if applied:
            self.save(doc)

    def add_previews(self, doc, pending: Pending, result) -> None:
        """A result's images as one choice in the history, the first one shown."""
        batch = [
            self.entry(pending, g, jobs.crop_result(np.asarray(g.image), pending.plan), doc, False)
            for g in result.images
        ]
        self.history.add_batch(batch)
        self.save(doc)
        self.show(0, doc)
        n = len(batch)
        self.owner.show_status(
            message=f"{n} result{'s' if n > 1 else ''} to choose from: pick one in the "
            "history, then Apply it or Discard it.",
            level="info",
        )

    @contextlib.contextmanager
    def hidden(self, doc) -> Iterator[None]:
        """The preview layer out of the picture while a job reads the canvas: it is a
        choice not made yet, not the artist's painting."""
        shown = self.shown
        off = (
            shown is not None
            and host.doc_key(doc) == shown.doc_key
            and host.set_visible(doc, shown.node_id, False)
        )
        try:
            yield
        finally:
            if off:
                host.set_visible(doc, shown.node_id, True)

    def show(self, index: int, doc=None) -> bool:
        """Show history entry `index` in the one preview layer on top (made if missing)."""
        try:
            entry = self.history[index]
            if entry.image is None:
                raise PlanError(hist.NO_FULL_IMAGE)
            doc = doc or host.active_document()
            old = (
                self.shown
                if self.shown is not None and self.shown.doc_key == host.doc_key(doc)
                else None
            )
            if old is None:
                self.hide()  # one preview layer at a time, in one document
            keep = host.KeepActive(doc)
            artist = old.artist_layer if old else keep.keep
            node = host.write_preview_layer(
                doc,
                old.node_id if old else None,
                hist.PREVIEW_LAYER,
                entry.image,
                entry.plan.target,
                entry.mask,
                old.target if old else None,
            )
            keep.add(node)
            keep.finish()
        except (IndexError, PlanError) as exc:
            self.owner.show_status(message=str(exc), level="error")
            return False
        self.shown = ShownPreview(host.doc_key(doc), node, entry.key, entry.plan.target, artist)
        return True

    def hide(self) -> None:
        """Remove the preview layer; the layer the artist painted on before it came is the
        active one again (Krita may have made the preview active, and removing an active
        layer leaves Krita's choice)."""
        shown, self.shown = self.shown, None
        doc = host.document_by_key(shown.doc_key) if shown is not None else None
        if doc is not None:
            host.remove_node(doc, shown.node_id)
            artist = host.find_node(doc, shown.artist_layer) if shown.artist_layer else None
            if artist is not None:
                doc.setActiveNode(artist)

    def apply(self, index: int, doc=None, new_layer: bool = False) -> str | None:
        """Place history entry `index` in `doc` (the active document): by default as a
        layer on top with the selection as its transparency mask; `new_layer`: as one plain
        layer right above the artist's active layer, the mask cut into its alpha. The
        preview layer goes away; the artist's active layer stays active."""
        say = self.owner.show_status
        try:
            entry = self.history[index]
            if entry.image is None:
                raise PlanError(hist.NO_FULL_IMAGE)
            doc = doc or host.active_document()
            self.hide()
            keep = host.KeepActive(doc)
            name, image, target, mask = entry.layer_name, entry.image, entry.plan.target, entry.mask
            record = {"name": name, "seed": entry.seed, "masked": "", "job_id": entry.job_id}
            if new_layer:
                keep.add(host.add_layer_above(doc, keep.keep, name, image, target, mask))
                record["masked"] = "alpha" if mask is not None else ""
            else:

                def masked(kind: str) -> None:
                    record["masked"] = kind

                layer, kind = host.add_result_layer(
                    doc, doc.rootNode(), name, image, target, mask, masked
                )
                record["masked"] = record["masked"] or kind
                keep.add(layer)
            host.refresh(doc)
            keep.finish()
        except (IndexError, PlanError) as exc:
            say(message=str(exc), level="error")
            return None
        entry.applied = True
        self.history.changed()
        self.owner.applied.append(record)
        self.save(host.document_by_key(entry.doc_key))
        say(message=f"Applied {name!r}.", level="info")
        return name

    def discard(self, index: int) -> None:
        """Take entry `index` out of the history (and its preview off the canvas)."""
        try:
            entry = self.history.remove(index)
        except IndexError:
            return
        if self.shown is not None and self.shown.key == entry.key:
            self.hide()
        self.save(host.document_by_key(entry.doc_key))
        self.owner.show_status(message="Discarded the result.", level="info")

    def copy_params(self, index: int, base: Params) -> Params:
        """Reuse settings: the entry's parameters, as its infotext records them."""
        return params_from_infotext(self.history[index].infotext, base)

    def load(self, doc) -> int:
        """Merge the history saved in `doc` (once per document and session); returns how
        many entries were new."""
        key = host.doc_key(doc)
        if key in self.loaded_docs:
            return 0
        self.loaded_docs.add(key)
        saved = hist.load(host.annotation(doc, hist.ANNOTATION_TYPE))
        return self.history.add_saved(saved, key)

    def save(self, doc) -> None:
        """The document's entries into its annotation, saved in the .kra with it."""
        if doc is None or not host.is_open(doc):
            return
        key = host.doc_key(doc)
        self.load(doc)  # what it held before, unless merged already: kept
        data = hist.dump(self.history.of_document(key))
        host.set_annotation(doc, hist.ANNOTATION_TYPE, hist.ANNOTATION_TEXT, data)
