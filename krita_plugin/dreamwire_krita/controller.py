"""Actions of the docker, independent of its widgets: one per button, plus the session.

The docker owns a QTimer that calls `tick()`; tests call `tick()` in a loop instead.
Nothing here blocks: submitting returns at once and results are applied when they arrive.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import numpy as np
from krita import Krita

from dreamwire.shared.batch_split import split_batch
from dreamwire.shared.family_support import check_job, check_mode, model_info
from dreamwire.shared.fanout import worker_limit
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.native_size import model_family
from dreamwire.shared.refine_upscaler import welcome_upscalers

from . import krita_host as host
from . import pose_layer
from .live_actions import LiveActions
from .logic import (
    batch_split,
    click_mask,
    control_from_layer,
    heatmaps,
    jobs,
    naming,
    prompt_regions,
    regions,
    tiling,
)
from .logic import controls as ctl
from .logic import generate_kind as gk
from .logic import history as hist
from .logic import progress as prog
from .logic import queue as jobqueue
from .logic import settings as settings_mod
from .logic import upscale as upscaling
from .logic.connection import connection_view
from .logic.local_backend import LocalBackend
from .logic.params import Params
from .logic.regions import PlanError
from .logic.session import Pending, Session, SessionError
from .result_history import ResultHistory
from .train_actions import ACTION as TRAIN
from .train_actions import TrainActions
from .xyz_actions import XyzActions


@dataclass
class Status:
    state: str = "disconnected"  # the client's connection state
    label: str = "Disconnected"  # what the docker shows for it (logic/connection.py)
    message: str = ""
    level: str = "info"  # "info" | "warning" | "error"
    step: int = 0
    total: int = 0
    preview: np.ndarray | None = None
    # The bar and its text ("Step 12/20 · ~8 s left", "Decoding…"): logic/progress.py.
    progress: prog.ProgressView | None = None


class NullUi:
    def refresh(self, controller: Controller) -> None:
        pass


class Controller:
    def __init__(self, ui=None, settings: settings_mod.Settings | None = None):
        self.ui = ui or NullUi()
        self.settings = settings or settings_mod.load(Krita.instance().readSetting)
        self.status = Status()
        self.results = ResultHistory(self)  # the history, and results waiting as previews
        self.session: Session | None = None
        self.welcome = None
        self.welcome_version = 0
        self.local_backend: LocalBackend | None = None  # the backend this plugin started
        self.local_failure = ""  # why it is not running; shown until a backend answers
        self.step_clock = prog.StepClock()
        self.applied: list[dict] = []  # what landed on the canvas, newest last
        self.last_job = None  # the last job built, for scripts and tests to inspect
        self.layer_count = 4  # how many layers the Layers action asks for
        self.live = LiveActions(self)
        self.poses = pose_layer.Follower()  # the active pose layer's limbs follow its joints
        self.ever_connected = False  # this connection reached the backend once
        self.xyz = XyzActions(self)
        self.train = TrainActions(self)
        self.splits: list[batch_split.SplitBatch] = []  # batches split across workers

    # -- connection ---------------------------------------------------------------
    def save_settings(self, s: settings_mod.Settings) -> None:
        problems = s.problems()
        if problems:
            raise SessionError("; ".join(problems))
        settings_mod.save(s, Krita.instance().writeSetting)
        self.settings = s

    def connect(self) -> None:
        from dreamwire.shared.client import Client

        self.disconnect()
        self.ever_connected = False
        self.local_failure = ""
        s = self.settings
        if s.backend_command and s.is_local():
            self.start_local_backend()
        self.session = Session(
            Client(
                s.address,
                server_public_key=s.server_key or None,
                client_secret_key=s.client_key or None,
            ),
            self,
        )
        if self.local_failure:
            self.on_state(self.session.state)  # the failure, not "Connecting…"
            return
        self.show_status(
            state=self.session.state,
            label=connection_view(self.session.state, False, s.address).label,
            message=f"Connecting to {s.address}…",
            level="info",
        )

    def refresh_models(self) -> None:
        """The backend's model lists again, e.g. after `dreamwire models merge` wrote a new
        checkpoint into its folders; the docker's lists follow when the answer arrives."""
        if self.session is not None:
            self.session.refresh_models()

    def disconnect(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        self.status.state, self.status.label = "disconnected", "Disconnected"

    @property
    def backend_process(self):
        """The local backend's process (None when none was started)."""
        return self.local_backend.process if self.local_backend is not None else None

    def start_local_backend(self) -> None:
        if self.local_backend is not None and self.local_backend.running:
            return
        self.local_backend = LocalBackend(self.settings.backend_command)
        failure = self.local_backend.start()
        if failure is not None:
            self.local_failure = failure.message

    def shutdown(self) -> None:
        # Live takes its preview layer away with it; Krita may be tearing documents down.
        with contextlib.suppress(Exception):
            self.live.switch(False)
        self.disconnect()
        if self.local_backend is not None:
            self.local_backend.stop()

    def tick(self) -> None:
        if self.session is not None and self.session.tick():
            self.ui.refresh(self)
        if self.local_backend is not None and self.local_backend.failure is None:
            failure = self.local_backend.check()  # not None once, when it has exited
            if failure is not None:
                self.local_failure = failure.message
                if self.status.state != "connected":  # else when the client notices
                    self.on_state(self.status.state)
        if self.live.on:
            self.live.tick()
        with contextlib.suppress(Exception):  # a document closing under the timer
            self.poses.tick()

    @property
    def busy(self) -> bool:
        return self.session is not None and self.session.busy

    # -- actions ------------------------------------------------------------------
    # `doc` defaults to the active document; scripts without a view pass one.
    def generate(self, params: Params, doc=None) -> str | None:
        return self._act("generate", params, doc)

    def generate_by_selection(self, params: Params, doc=None) -> str | None:
        """The docker's one Generate button: generate, refine or inpaint as the selection
        and the strength say (logic/generate_kind.py, Krita AI Diffusion's rule)."""
        try:
            decision = self.decide(params, doc)
        except Exception as exc:  # PlanError, or a colour space it cannot read
            self.show_status(message=getattr(exc, "message", None) or str(exc), level="error")
            return None
        return self._act(decision.kind.value, params, doc)

    def decide(self, params: Params, doc=None) -> gk.Decision:
        """What the Generate button would send for `doc` (the active document) now."""
        doc = doc or Krita.instance().activeDocument()
        if doc is None:
            return gk.decide(False, None, params.strength, lambda: False)
        canvas, sel = host.canvas_rect(doc), host.selection_rect(doc)

        def painted() -> bool:
            # Where the job would read: around the selection (inpaint's context), or the
            # whole canvas.
            area = canvas if sel is None else sel.grow(regions.INPAINT_PADDING).intersect(canvas)
            with self.results.hidden(doc):
                return not area.empty() and bool(host.read_visible(doc, area)[..., 3].any())

        return gk.decide(True, sel, params.strength, painted)

    def refine(self, params: Params, doc=None) -> str | None:
        return self._act("refine", params, doc)

    def inpaint(self, params: Params, doc=None) -> str | None:
        return self._act("inpaint", params, doc)

    def edit(self, params: Params, doc=None) -> str | None:
        """Edit the active layer (or its selected part) as the prompt instructs; the result
        comes in as a new layer over the same area. Only on an edit model (Flux Kontext)."""
        return self._act("edit", params, doc)

    def layers(self, params: Params, doc=None, count: int = 4) -> str | None:
        """Split the active layer (or its selected part) into `count` RGBA layers; they come
        in as a group, bottom layer first. Only on a layered model (Qwen-Image-Layered)."""
        self.layer_count = count
        return self._act("layers", params, doc)

    def upscale(self, params: Params, choice: upscaling.UpscaleChoice, doc=None) -> str | None:
        """Upscale the whole canvas; the document is scaled when the result arrives."""
        return self._act("upscale", params, doc, choice)

    def select_by_clicking(self, params: Params, doc=None) -> str | None:
        """Ask SAM 2 for the object under the dots on the "clicks" layer (and inside the
        selection's bounds, if any); the mask replaces the selection (logic/click_mask.py)."""
        return self._act("select", params, doc)

    def make_control_layer(
        self, wire_type: str, params: Params, doc=None, layer_id: str | None = None
    ) -> str | None:
        """Ask the backend's annotator for `wire_type`'s map of the layer `layer_id` (None:
        the active layer); it lands as a new control layer above that layer
        (logic/control_from_layer.py)."""
        return self._act("control", params, doc, (wire_type, layer_id))

    def control_types_to_make(self) -> list[str]:
        """The docker labels of the control types this backend can make from a layer."""
        return control_from_layer.makeable(self.welcome)

    def select_subject(self, params: Params, doc=None) -> str | None:
        """Ask a background-removal model (rembg's files) for the canvas's subject; its soft
        mask replaces the selection (logic/click_mask.py)."""
        return self._act("subject", params, doc)

    def cancel(self, job_id: str | None = None) -> None:
        """Cancel `job_id` (one job of the queue), or every job in flight."""
        if self.session is not None:
            self.session.cancel(job_id)
            if job_id is None and self.session.busy:  # else on_cancelled has said so
                self.show_status(message="Cancelling…", level="info")

    def queue(self) -> list[jobqueue.QueueEntry]:
        """The jobs in flight, for the docker's queue menu (submission order)."""
        if self.session is None:
            return []
        return jobqueue.entries(
            jobqueue.QueuedJob(
                p.job_id, p.action, p.params.prompt, int(p.params.seed), p.stage, p.ahead
            )
            for p in self.session.pending.values()
        )

    def _act(self, action: str, params: Params, doc=None, choice=None) -> str | None:
        """Submit one action; any problem becomes a message, never an exception."""
        params = self.with_job_seed(params)
        try:
            # The document is checked first: its problems are the ones the artist can fix now.
            job, pending = self.build(action, params, doc, choice)
            if self.session is None:
                raise SessionError("Not connected: set the backend address and connect.")
            parts = split_batch(job, worker_limit(self.welcome))
            if len(parts) > 1:  # several workers: each makes a part of the batch
                split = batch_split.SplitBatch(
                    parts, batch_split.SessionSender(self.session, pending)
                )
                job_id = split.start()
                self.splits.append(split)
            else:
                job_id = self.session.submit(job, pending)
        except (PlanError, SessionError) as exc:
            self.show_status(message=str(exc), level="error")
            return None
        except Exception as exc:  # a DreamwireError from validate(), or a Krita surprise
            self.show_status(message=getattr(exc, "message", None) or str(exc), level="error")
            return None
        note = host.doc_info(pending.doc_key).plan.note
        if job.mode is JobMode.UPSCALE:
            region = pending.plan.region
            note = f"To {region.w}x{region.h} with {job.upscale.upscaler}. {note}"
        if job.hires is not None:
            note = (
                f"In two passes: {job.width}x{job.height}, then Hires.fix to "
                f"{job.hires.width}x{job.hires.height} with {job.hires.upscaler}. {note}"
            )
        self.show_status(
            message=f"{action.capitalize()}: queued. {note}".strip(), level="info", step=0, total=0
        )
        return job_id

    @staticmethod
    def with_job_seed(params: Params) -> Params:
        """Each queued job its own seed: the panel's when fixed, else a new random one
        (logic/queue.py), known here so the queue and the history can show it."""
        seed = jobqueue.job_seed(params.seed, params.fixed_seed)
        return dataclasses.replace(params, seed=seed, fixed_seed=True)

    def build(self, action: str, params: Params, doc=None, choice=None):
        doc = doc or host.active_document()
        with self.results.hidden(doc):
            return self._build_shown(action, params, doc, choice)

    def _build_shown(self, action: str, params: Params, doc, choice=None):
        host.doc_info(doc)  # refuses colour spaces it cannot convert
        canvas, sel = host.canvas_rect(doc), host.selection_rect(doc)
        # The model's family as the backend describes it: sizes, settings it takes, and
        # what it cannot run, refused here with the backend's words before sending.
        info = model_info(params.model, self.welcome)
        seamless = tiling.seamless_axes(params.seamless, host.wrap_around())
        if action == "upscale":  # the whole canvas, whatever is selected
            plan = upscaling.plan_upscale(canvas, choice.factor)
            pixels = host.read_visible(doc, canvas)
            job = upscaling.upscale_job(params, pixels, choice, info)
            job.seamless = seamless  # the backend's seamless upscale keeps a tile tiling
            job = check_job(job.validate(), info)
            self.last_job = job
            return job, Pending(action=action, plan=plan, params=params, doc_key=doc)
        if action in ("edit", "layers"):
            return self._build_edit(params, doc, canvas, sel, info, action)
        if action == "select":
            return self._build_select(params, doc, canvas, sel)
        if action == "control":
            return self._build_control(params, doc, canvas, choice)
        if action == "subject":  # the whole visible canvas, whatever is selected
            job = click_mask.subject_job(host.read_visible(doc, canvas))
            self.last_job = job
            plan = regions.Plan("select", canvas, canvas, masked=False)
            return job, Pending(action=action, plan=plan, params=params, doc_key=doc)
        if action == "generate":
            plan = regions.plan_generate(canvas, sel)
        elif action == "refine":
            plan = regions.plan_refine(canvas, sel)
        else:
            plan = regions.plan_inpaint(canvas, sel)
        if seamless != "none":
            plan = tiling.tile_plan(plan, canvas)
        mask = host.read_selection(doc, plan.target) if plan.masked else None
        if mask is not None and not mask.any():
            raise PlanError("The selection is empty: select some pixels, or deselect all.")
        units = self._control_units(doc, plan)
        if action == "generate":
            upscalers = welcome_upscalers(self.welcome)
            job = jobs.generate_job(params, plan, units, info, upscalers)
        elif action == "refine":
            pixels = host.read_visible(doc, plan.region)
            job = jobs.refine_job(params, plan, pixels, units, info)
        else:
            region_mask = host.read_selection(doc, plan.region)
            inputs = regions.inpaint_inputs(host.read_visible(doc, plan.region), region_mask)
            if seamless != "none":
                tiling.check_inputs(inputs)
            job = jobs.inpaint_job(params, plan, inputs, units, info)
        job.seamless = seamless
        job.regions = self._regions(doc, plan)
        job.validate()
        check_job(job, info)
        pending = Pending(action=action, plan=plan, params=params, doc_key=doc, mask=mask)
        self.last_job = job
        return job, pending

    def _build_edit(self, params: Params, doc, canvas, sel, info, action: str = "edit"):
        """An edit or a layers job: both read the active layer (or its selected part)."""
        # Refused here in the words the docker greys the button out with.
        check_mode(action, params.model, self.welcome)
        plan = (regions.plan_edit if action == "edit" else regions.plan_layers)(canvas, sel)
        mask = host.read_selection(doc, plan.target) if plan.masked else None
        if mask is not None and not mask.any():
            raise PlanError("The selection is empty: select some pixels, or deselect all.")
        pixels = host.read_active_layer(doc, plan.region)
        if action == "edit":
            job = jobs.edit_job(params, plan, pixels, info)
        else:
            job = jobs.layers_job(params, plan, pixels, info, self.layer_count)
        job = check_job(job, info)
        self.last_job = job
        return job, Pending(action=action, plan=plan, params=params, doc_key=doc, mask=mask)

    def _build_select(self, params: Params, doc, canvas, sel):
        layer = click_mask.clicks_layer(host.layer_infos(doc))
        dots, pixels = host.read_layer_and_canvas_without_it(
            doc, layer.node_id if layer else None, canvas
        )
        clicks = click_mask.clicks_from_dots(dots)
        box = click_mask.box_from_selection(sel, canvas)
        job = click_mask.segment_job(pixels, clicks, box)
        self.last_job = job
        plan = regions.Plan("select", canvas, canvas, masked=False)
        return job, Pending(action="select", plan=plan, params=params, doc_key=doc)

    def _build_control(self, params: Params, doc, canvas, choice: tuple[str, str | None]):
        """The layer's pixels over the canvas, whatever is selected: the map lines up with
        the layer it was made from."""
        wire_type, layer_id = choice
        node = host.find_node(doc, layer_id) if layer_id else doc.activeNode()
        if node is None or host.node_id(node) == host.node_id(doc.rootNode()):
            raise PlanError("Select the layer to make a control layer from.")
        pixels = host.read_layers(doc, [host.node_id(node)], canvas)[host.node_id(node)]
        job = control_from_layer.preprocess_job(wire_type, self.welcome, pixels)
        self.last_job = job
        made = control_from_layer.MadeControl(host.node_id(node), node.name(), wire_type)
        plan = regions.Plan("control", canvas, canvas, masked=False)
        return job, Pending(action="control", plan=plan, params=params, doc_key=doc, control=made)

    def _control_result(self, pending: Pending, result) -> None:
        doc, made = pending.doc_key, pending.control
        if not host.is_open(doc):
            self.show_status(
                message="The document was closed before the map arrived.", level="warning"
            )
            return
        name = control_from_layer.layer_name(made.type, made.source_name)
        try:
            keep = host.KeepActive(doc)  # the artist's layer stays the one they paint on
            rgba = control_from_layer.layer_pixels(result.images[0].image)
            new_id = host.add_layer_above(
                doc, made.source_id, name, rgba, pending.plan.region, None
            )
            keep.add(new_id)
            self.set_mark(new_id, control_from_layer.mark(made.type), doc)
            keep.finish()
        except Exception as exc:  # a Krita surprise: say so, keep the docker alive
            self.show_status(message=f"Could not add the control layer: {exc}", level="error")
            return
        self.show_status(message=f"Added the control layer {name!r}.", level="info")

    def _select_result(self, pending: Pending, result) -> None:
        doc, region = pending.doc_key, pending.plan.region
        if not host.is_open(doc):
            self.show_status(
                message="The document was closed before the mask arrived.", level="warning"
            )
            return
        try:
            data = click_mask.selection_bytes(result.images[0].image, (region.w, region.h))
            host.replace_selection(doc, data, region)
        except Exception as exc:  # a Krita surprise: say so, keep the docker alive
            self.show_status(message=f"Could not select: {exc}", level="error")
            return
        host.refresh(doc)
        what = "the subject" if pending.action == "subject" else "the clicked object"
        self.show_status(message=f"Selected {what}.", level="info")

    def _regions(self, doc, plan: regions.Plan):
        """Regional prompts from the layers named "region: ..." (logic/prompt_regions.py)."""
        found = prompt_regions.region_layers(host.layer_infos(doc))
        if not found:
            return []
        pixels = host.read_layers(doc, [r.node_id for r in found], plan.region)
        return prompt_regions.build_regions(found, pixels)

    # -- control layers -----------------------------------------------------------
    def marks(self, doc=None) -> dict[str, ctl.ControlMark]:
        doc = doc or host.active_document()
        return ctl.load_marks(host.annotation(doc, ctl.ANNOTATION_TYPE))

    def set_mark(self, node_id: str, mark: ctl.ControlMark | None, doc=None) -> None:
        doc = doc or host.active_document()
        marks = self.marks(doc)
        if mark is None:
            marks.pop(node_id, None)
        else:
            marks[node_id] = mark
        host.set_annotation(
            doc, ctl.ANNOTATION_TYPE, "Dreamwire control layers", ctl.dump_marks(marks)
        )

    def switch_control(self, node_id: str, on: bool, doc=None) -> bool:
        """Switch a control layer on or off (kept marked and shown; off, jobs leave it
        out). Stored with its mark in the document. False when the layer is not marked."""
        doc = doc or host.active_document()
        mark = self.marks(doc).get(node_id)
        if mark is None:
            return False
        if mark.enabled != on:
            self.set_mark(node_id, ctl.switched(mark, on), doc)
        return True

    def _control_units(self, doc, plan: regions.Plan):
        marks = ctl.in_use(self.marks(doc))
        live = {i: m for i, m in marks.items() if host.find_node(doc, i) is not None}
        refs = [i for i, m in live.items() if m.type in ctl.REFERENCE_TYPES]
        # Maps line up with the generated area; a reference picture counts whole, wherever
        # it lies on the canvas (Krita AI Diffusion reads it over the layer's bounds).
        layers = host.read_layers(doc, [i for i in live if i not in refs], plan.region)
        layers.update(host.read_layers(doc, refs, host.canvas_rect(doc)))
        units = []
        for node_id, mark in live.items():
            svg = host.layer_svg(doc, node_id) if mark.type == "openpose" else None
            if svg is not None:
                # The layer's limbs catch up with its joints; the image is drawn from joints.
                pose_layer.follow(doc, host.find_node(doc, node_id))
                from .logic.pose import pose_image_from_svg

                image = pose_image_from_svg(svg, plan.region, doc.width(), doc.height())
                if image is not None:
                    units.append(
                        ctl.ControlUnit(
                            type="openpose",
                            image=image,
                            weight=mark.weight,
                            start=mark.start,
                            end=mark.end,
                        )
                    )
                    continue
            units.append(ctl.control_unit(mark, layers[node_id]))
        return units

    def add_pose(self, doc=None) -> str | None:
        """A draggable standing body (pose_layer.py) in the selection, else the canvas: a
        new pose control layer, or one more person on the active pose layer."""
        try:
            doc = doc or host.active_document()
            sel = host.selection_rect(doc)
            box = sel.intersect(host.canvas_rect(doc)) if sel is not None else None
            layer, new = pose_layer.add_pose(doc, None if box is None or box.empty() else box)
            if new:
                self.set_mark(host.node_id(layer), ctl.ControlMark("openpose"), doc)
        except Exception as exc:  # PlanError, or a Krita surprise: say so, keep the docker
            self.show_status(message=getattr(exc, "message", None) or str(exc), level="error")
            return None
        what = "Added a pose layer" if new else "Added a person"
        self.show_status(message=f"{what}: drag its joints with the shape tool.", level="info")
        return host.node_id(layer)

    def control_offers(self, model: str) -> list[ctl.Offer]:
        """The docker's control types, marked by what the backend serves for `model`."""
        return ctl.offers(self.welcome, model_family(model, self.welcome))

    # -- regions ------------------------------------------------------------------
    def add_region(self, prompt: str = "", doc=None) -> str | None:
        """A new transparent paint layer named "region: <prompt>" above the active layer,
        made active, ready to paint the region's area (Krita AI Diffusion's add region)."""
        try:
            doc = doc or host.active_document()
            name = prompt_regions.region_layer_name(prompt)
            host.add_paint_layer(doc, name)
        except PlanError as exc:
            self.show_status(message=str(exc), level="error")
            return None
        self.show_status(
            message=f"Added the layer {name!r}: paint where it goes"
            + ("." if prompt_regions.region_prompt(name) else ", then name what goes there."),
            level="info",
        )
        return name

    # -- session listener ---------------------------------------------------------
    def on_state(self, state: str) -> None:
        if state == "connected":
            self.ever_connected = True
            self.local_failure = ""  # a backend answers after all
        view = connection_view(
            state, self.ever_connected, self.settings.address, self.local_failure
        )
        self.show_status(state=state, label=view.label, message=view.message, level=view.level)

    def on_welcome(self, welcome) -> None:
        self.welcome = welcome
        self.welcome_version += 1  # the docker refills its lists when this moves
        self.ui.refresh(self)

    def on_progress(self, pending, progress) -> None:
        if pending is not None and pending.action == "live":
            return  # live jobs come and go quietly; the preview layer is their progress
        if pending is not None and pending.action == "xyz" and self.xyz.run is not None:
            self.xyz.on_progress()
            return
        if pending is not None and pending.action == TRAIN:
            self.train.on_progress(progress)
            return
        running = progress.state != "queued"
        if not running and self.status.progress is not None and self._running_elsewhere(pending):
            return  # a job waiting behind the running one: the bar stays on the running one
        self.status.step, self.status.total = progress.step, progress.total
        if progress.preview is not None:
            self.status.preview = progress.preview
        eta = self.step_clock.observe(
            progress.job_id, progress.state, progress.step, progress.total
        )
        view = prog.view(progress.state, progress.step, progress.total, eta, progress.message)
        self.status.progress = view
        self.status.message = view.text
        self.ui.refresh(self)

    def _running_elsewhere(self, pending) -> bool:
        """Whether another job of this session is past the queue (it owns the bar)."""
        if self.session is None:
            return False
        return any(
            p is not pending and p.stage not in ("sent", "queued") and p.action not in ("live",)
            for p in self.session.pending.values()
        )

    def _split_of(self, job_id: str) -> batch_split.SplitBatch | None:
        return next((s for s in self.splits if s.owns(job_id)), None)

    def _end_split(self, pending) -> bool:
        """A part of a split batch failed or was cancelled: cancel the others, and land the
        parts already back (True when some did)."""
        split = self._split_of(pending.job_id) if pending is not None else None
        if split is None:
            return False
        self.splits.remove(split)
        made = split.stop(pending.job_id)
        if made is None or not host.is_open(pending.doc_key):
            return False
        try:
            self._apply(pending.doc_key, pending, made)
        except Exception:  # noqa: BLE001 - the message the artist sees is the part's
            return False
        return True

    def on_result(self, pending: Pending, result) -> None:
        split = self._split_of(result.job_id)
        if split is not None:
            merged = split.result(result)
            if merged is None:
                self.show_status(message=f"Batch: {len(split.results)} part(s) back.", level="info")
                return
            self.splits.remove(split)
            result = merged  # every part back: they land as the one batch they are
        if pending.action == "xyz":
            self.xyz.on_result(pending, result)
            return
        if pending.action == TRAIN:
            self.train.on_result(pending, result)
            return
        if pending.action == "live":
            self.live.on_result(pending, result)
            return
        if pending.action in ("select", "subject"):
            self._select_result(pending, result)
            return
        if pending.action == "control":
            self._control_result(pending, result)
            return
        doc = pending.doc_key
        self.status.preview = self.status.progress = None
        if not host.is_open(doc):
            # Kept for the artist: the history can insert it into another document.
            for gen in result.images:
                self.results.remember(
                    pending, gen, jobs.crop_result(np.asarray(gen.image), pending.plan)
                )
            self.show_status(
                message="The document was closed before the result arrived; "
                "it is in the history (Insert again) and the backend's output folder.",
                level="warning",
            )
            return
        previews = pending.action in hist.PREVIEW_ACTIONS and self.results.previews_on
        try:
            # DAAM's overlays belong beside their image: those results land at once.
            if previews and not any(g.heat_maps for g in result.images):
                self.results.add_previews(doc, pending, result)
                return
            placed = self._apply(doc, pending, result)
        except Exception as exc:  # a Krita surprise: say so, keep the docker alive
            self.show_status(message=f"Could not place the result: {exc}", level="error")
            return
        self.show_status(message=f"Added {len(placed)} layer(s).", level="info")

    def on_error(self, pending, message: str) -> None:
        if pending is not None and pending.action == "live":
            self.live.on_error(pending, message)
            return
        if pending is not None and pending.action == "xyz":
            self.xyz.on_error(message)
            return
        if pending is not None and pending.action == TRAIN:
            self.train.on_error(pending, message)
            return
        self._end_split(pending)
        self.status.preview = self.status.progress = None
        self.show_status(message=message, level="error")

    def on_cancelled(self, pending) -> None:
        if pending.action == "live":
            self.live.on_cancelled(pending)
            return
        if pending.action == "xyz":
            self.xyz.on_cancelled()
            return
        if pending.action == TRAIN:
            self.train.on_cancelled(pending)
            return
        landed = self._end_split(pending)
        self.status.preview = self.status.progress = None
        unchanged = (
            "the parts already made were added" if landed else "the document was not changed"
        )
        self.show_status(message=f"Cancelled; {unchanged}.", level="info")

    # -- results ------------------------------------------------------------------
    def _apply(self, doc, pending: Pending, result) -> list[str]:
        plan, params = pending.plan, pending.params
        if plan.action == "upscale":
            # Krita AI Diffusion's upscale: the document takes the result's size.
            host.scale_document(doc, plan.region.w, plan.region.h)
        keep = host.KeepActive(doc)  # the artist's layer stays the one they paint on
        # Every layer of the job enters inside its group, in one undo step.
        group = host.ResultGroup(
            doc, naming.group_name(params.prompt, len(result.images), plan.action)
        )
        names, records = [], []
        # Each layer goes over the one before (bottom first): a layers job's stack too.
        for gen in sorted(result.images, key=lambda g: g.layer):
            rgba = jobs.crop_result(np.asarray(gen.image), plan)
            name = naming.layer_name(params.prompt, gen.seed, plan.action)
            record = {"name": name, "seed": gen.seed, "masked": "", "job_id": result.job_id}

            def masked(kind: str, record: dict = record) -> None:
                record["masked"] = kind  # a mask made over later turns of the event loop

            if gen.layer >= 0:
                name = naming.stack_layer_name(gen.layer, len(result.images))
            _layer, kind = group.add(name, rgba, plan.target, pending.mask, masked)
            # "pending": the mask is still being made; masked() fills in the outcome.
            record["masked"] = record["masked"] or kind
            if gen.heat_maps:
                group.add_node(self._heat_maps(doc, name, gen, plan))
            names.append(name)
            records.append((gen, rgba, record))
        keep.add(group.insert())
        for gen, rgba, record in records:
            self.results.remember(pending, gen, rgba, doc, applied=True)
            self.applied.append(record)
        host.refresh(doc)
        keep.finish()
        return names

    def _heat_maps(self, doc, name: str, gen, plan):
        """The image's DAAM maps as a group of overlays over it, one layer per word (the
        first shown, the rest hidden: they are read one at a time); not yet in `doc`."""
        maps = host.ResultGroup(doc, f"Attention maps: {name}")
        for i, heat in enumerate(gen.heat_maps):
            grey = np.repeat(np.asarray(heat.image)[..., None], 3, axis=2)
            rgba = heatmaps.overlay(jobs.crop_result(grey, plan)[..., 0])
            layer, _ = maps.add(heat.word, rgba, plan.target)
            layer.setVisible(i == 0)
        maps.group.setChildNodes(maps.children)
        return maps.group

    def show_status(self, **kw) -> None:
        """Set the status the docker shows (message, level, progress ...) and refresh it."""
        for k, v in kw.items():
            setattr(self.status, k, v)
        self.ui.refresh(self)
