"""Train a LoRA from the document's layers through the backend's queue (a `train_lora`
job carrying the layers as pictures; which layers, captions and checks are
logic/train_lora.py's). Progress reads "Training: step n/N"; on the result the LoRA is in
the backend's LoRA folder and the model lists are asked for again, so the LoRA picker
lists it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dreamwire.shared.family_support import model_info

from . import krita_host as host
from .logic import progress as prog
from .logic import train_lora as tl
from .logic.params import Params
from .logic.regions import Plan, PlanError
from .logic.session import Pending, SessionError

if TYPE_CHECKING:
    from .controller import Controller

ACTION = "train_lora"


class TrainActions:
    def __init__(self, owner: Controller):
        self.owner = owner
        # What the dialog shows next: the last request, steps at the backend's default.
        self.last = tl.TrainRequest("", "")
        self.names: dict[str, str] = {}  # job id -> the LoRA it trains

    def train(self, req: tl.TrainRequest, params: Params, doc=None) -> str | None:
        """Send the training job; returns its id (None when refused: the message says why)."""
        owner = self.owner
        self.last = req
        try:
            doc = doc or host.active_document()
            host.doc_info(doc)  # a colour space the layers cannot be read in is refused
            sel = host.selection_rect(doc)
            rect = sel if sel is not None and not sel.empty() else host.canvas_rect(doc)
            layers = tl.chosen_layers(
                host.selected_layer_infos(doc), host.top_level_paint_infos(doc)
            )
            pixels = host.read_layers(doc, [x.node_id for x in layers], rect)
            pictures = [tl.LayerPicture(x.name, pixels[x.node_id]) for x in layers]
            welcome = owner.welcome
            job = tl.build_job(
                req,
                pictures,
                params.model,
                model_info(params.model, welcome),
                welcome.limits if welcome is not None else {},
                params.steps,
                params.seed,
            )
            if owner.session is None:
                raise SessionError("Not connected: set the backend address and connect.")
            # The queue menu names the job by its prompt: the LoRA's name, not the docker's.
            shown = dataclasses.replace(params, prompt=job.train_lora.name)
            pending = Pending(ACTION, Plan(ACTION, rect, rect, False), shown, doc)
            job_id = owner.session.submit(job, pending)
        except (tl.TrainError, PlanError, SessionError) as exc:
            owner.show_status(message=getattr(exc, "message", None) or str(exc), level="error")
            return None
        owner.last_job = job
        self.names[job_id] = job.train_lora.name
        owner.show_status(
            message=f"Training LoRA {job.train_lora.name!r} on {len(pictures)} layers: queued.",
            level="info",
            step=0,
            total=0,
        )
        return job_id

    def on_progress(self, progress) -> None:
        status = self.owner.status
        if progress.state != "training":  # queued, loading the model ...
            view = prog.view(progress.state, 0, 0, None, progress.message)
        else:
            text = tl.progress_text(progress.step, progress.total, progress.loss)
            view = prog.ProgressView(text, progress.step, max(1, progress.total))
        status.step, status.total = progress.step, progress.total
        if progress.preview is not None:  # a sample picture every N steps
            status.preview = progress.preview
        status.progress, status.message = view, view.text
        self.owner.ui.refresh(self.owner)

    def on_result(self, pending: Pending, result) -> None:
        name = self.names.pop(result.job_id, "")
        owner = self.owner
        owner.status.preview = owner.status.progress = None
        owner.refresh_models()  # the new LoRA in the docker's lists
        owner.show_status(message=tl.result_text(name), level="info")

    def on_error(self, pending: Pending, message: str) -> None:
        self.names.pop(pending.job_id, None)
        self.owner.status.preview = self.owner.status.progress = None
        self.owner.show_status(message=f"Training stopped: {message}", level="error")

    def on_cancelled(self, pending: Pending) -> None:
        self.names.pop(pending.job_id, None)
        self.owner.status.preview = self.owner.status.progress = None
        self.owner.show_status(
            message="Training cancelled; no LoRA was written (the backend keeps the run's "
            "state under that name).",
            level="info",
        )
