"""Live mode: the canvas watched on a timer, a quick refine job whenever it changes, the
result shown in one preview layer (Krita AI Diffusion's Live workspace).

The decisions (when to send, what a change is, the quick sampling) are logic/live.py's;
this is the part that reads the document and writes the preview layer, driven by the
controller's tick and its result/error/cancel listener.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dreamwire.shared.native_size import model_family

from . import krita_host as host
from .logic import controls as ctl
from .logic import jobs, live, naming
from .logic.params import Params
from .logic.regions import PlanError
from .logic.session import Pending

if TYPE_CHECKING:
    from .controller import Controller


class LiveActions:
    """What Live holds between ticks, and its actions."""

    poll_s = 0.1  # Krita AI Diffusion polls at 0.1 s

    def __init__(self, owner: Controller):
        self.owner = owner
        self.on = False
        self.doc = None
        self.params_fn: Callable[[], Params] = Params
        self.strength = live.LIVE_STRENGTH
        self.seed: int | None = None
        self.state = live.LiveState()
        self.preview_id: str | None = None
        self.target = None  # where the last preview was written
        self.result: tuple | None = None  # (rgba, target, mask, seed) of the preview shown
        self.prompt = ""
        self.sampling_note = ""
        self.shown = 0  # previews shown so far, for tests
        self.last_poll = -1.0

    def due(self) -> bool:
        now = self.state.clock()
        if now - self.last_poll < self.poll_s:
            return False
        self.last_poll = now
        return True

    def switch(self, on: bool, params_fn: Callable[[], Params] | None = None, doc=None) -> None:
        """Switch Live on for `doc` (the active document), reading the panel through
        `params_fn` on every tick; off cancels its job and removes the preview layer."""
        say = self.owner.show_status
        if on:
            try:
                doc = doc or host.active_document()
                host.doc_info(doc)
            except PlanError as exc:
                say(message=str(exc), level="error")
                return
            self.on, self.doc, self.params_fn = True, doc, params_fn or Params
            self.state.reset()
            if self.seed is None:
                seed = int(self.params_fn().seed)
                self.seed = seed if seed >= 0 else live.new_seed()
            say(message="Live: paint, and the preview follows.", level="info")
            return
        if not self.on:
            return
        self.on = False
        session = self.owner.session
        if self.state.job_id and session is not None:
            session.cancel(self.state.job_id)
        self.state.reset()
        if self.doc is not None and host.is_open(self.doc):
            host.remove_node(self.doc, self.preview_id)
        self.preview_id = self.result = self.target = None
        say(message="Live off.", level="info")

    def new_seed(self) -> int:
        self.seed = live.new_seed()
        self.state.invalidate()
        return self.seed

    def tick(self) -> None:
        if self.doc is None or not host.is_open(self.doc):
            self.on = False
            self.state.reset()
            self.owner.show_status(message="Live off: its document was closed.", level="info")
            return
        session = self.owner.session
        if session is None or session.state != "connected":
            return
        if not self.due():
            return
        try:
            fp = self.fingerprint(self.doc, self.params_fn())
        except Exception as exc:  # a Krita surprise mid-edit: try again next tick
            self.owner.status.message = f"Live: could not read the canvas: {exc}"
            return
        decision = self.state.observe(fp)
        if decision.submit:
            self.submit(self.doc, self.params_fn(), fp, decision.cancel)

    def fingerprint(self, doc, params: Params) -> str:
        """What decides whether the canvas changed: its pixels, and everything else a job
        would read (settings, selection, control marks)."""
        sel = host.selection_rect(doc)
        marks = host.annotation(doc, ctl.ANNOTATION_TYPE) or b""
        params = params.for_job()  # another style's template is a change too
        extra = {
            "params": [params.prompt, params.negative, params.model, params.sampler, params.cfg]
            + [params.distilled_cfg],
            "strength": self.strength,
            "seed": self.seed,
            "size": [doc.width(), doc.height()],
            "selection": None if sel is None else [sel.x, sel.y, sel.w, sel.h],
            "marks": marks.hex(),
        }
        return live.fingerprint(host.layer_samples(doc), self.preview_id, extra)

    def submit(self, doc, params: Params, fp: str, cancel: str | None) -> None:
        owner = self.owner
        if cancel and owner.session is not None:
            owner.session.cancel(cancel)
        # The preview layer is hidden while the canvas is read, so it never feeds back.
        shown = host.set_visible(doc, self.preview_id, False)
        try:
            job, pending = owner.build("refine", params, doc)
            family = model_family(params.model, owner.welcome)
            sampling = live.live_sampling(
                params.sampler, params.cfg, params.model, owner.welcome, family
            )
            job = live.live_job(job, sampling, self.strength, self.seed)
            owner.last_job = job
            pending.action = "live"
            job_id = owner.session.submit(job, pending)
        except Exception as exc:  # PlanError, SessionError, a DreamwireError, Krita
            self.state.failed(fp)
            message = getattr(exc, "message", None) or exc
            owner.show_status(message=f"Live: {message}", level="error")
            return
        finally:
            if shown:
                host.set_visible(doc, self.preview_id, True)
        self.state.submitted(job_id, fp)
        self.sampling_note = sampling.note

    def on_result(self, pending: Pending, result) -> None:
        if not self.state.finished(pending.job_id) or not self.on or not result.images:
            return  # superseded, or Live was switched off meanwhile
        doc = pending.doc_key
        if not host.is_open(doc):
            return
        rgba = jobs.crop_result(np.asarray(result.images[0].image), pending.plan)
        keep = host.KeepActive(doc)
        try:
            self.preview_id = host.write_preview_layer(
                doc,
                self.preview_id,
                live.PREVIEW_LAYER,
                rgba,
                pending.plan.target,
                pending.mask,
                self.target,
            )
        except Exception as exc:
            message = f"Live: could not show the result: {exc}"
            self.owner.show_status(message=message, level="error")
            return
        keep.add(self.preview_id)
        keep.finish()
        self.result = (rgba, pending.plan.target, pending.mask, result.images[0].seed)
        self.target = pending.plan.target
        self.prompt = pending.params.prompt
        self.shown += 1
        self.owner.show_status(
            message=f"Live: seed {self.seed}, strength {self.strength:g}; {self.sampling_note}.",
            level="info",
        )

    def on_error(self, pending: Pending, message: str) -> None:
        if self.state.finished(pending.job_id):
            self.owner.show_status(message=f"Live: {message}", level="error")

    def on_cancelled(self, pending: Pending) -> None:
        self.state.finished(pending.job_id)  # superseded, or Live switched off

    def apply(self) -> str | None:
        """Copy the preview into a new paint layer right below it; Live stays on."""
        if self.result is None or self.doc is None or not host.is_open(self.doc):
            self.owner.show_status(message="Live: no preview to apply yet.", level="warning")
            return None
        rgba, target, mask, seed = self.result
        name = naming.layer_name(self.prompt, seed, "live")
        keep = host.KeepActive(self.doc)
        keep.add(host.add_layer_below(self.doc, self.preview_id, name, rgba, target, mask))
        keep.finish()
        self.owner.applied.append(
            {
                "name": name,
                "seed": seed,
                "masked": "alpha" if mask is not None else "",
                "job_id": "",
            }
        )
        self.owner.show_status(message=f"Applied the preview as {name!r}.", level="info")
        return name
