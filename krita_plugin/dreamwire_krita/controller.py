"""Actions of the docker, independent of its widgets: one per button, plus the session.

The docker owns a QTimer that calls `tick()`; tests call `tick()` in a loop instead.
Nothing here blocks: submitting returns at once and results are applied when they arrive.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

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
from .logic import (
    batch_split,
    click_mask,
    control_from_layer,
    heatmaps,
    jobs,
    live,
    naming,
    prompt_regions,
    regions,
    tiling,
    xyz,
)
from .logic import controls as ctl
from .logic import generate_kind as gk
from .logic import history as hist
from .logic import progress as prog
from .logic import queue as jobqueue
from .logic import settings as settings_mod
from .logic import upscale as upscaling
from .logic.connection import connection_view
from .logic.geometry import Rect
from .logic.history import Entry, History, params_from_infotext
from .logic.local_backend import LocalBackend
from .logic.params import Params
from .logic.regions import PlanError
from .logic.session import Pending, Session, SessionError


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
        self.history = History()
        self.session: Session | None = None
        self.welcome = None
        self.welcome_version = 0
        self.local_backend: LocalBackend | None = None  # the backend this plugin started
        self.local_failure = ""  # why it is not running; shown until a backend answers
        self.step_clock = prog.StepClock()
        self.applied: list[dict] = []  # what landed on the canvas, newest last
        self.last_job = None  # the last job built, for scripts and tests to inspect
        self.layer_count = 4  # how many layers the Layers action asks for
        self.live = LiveMode()
        self.poses = pose_layer.Follower()  # the active pose layer's limbs follow its joints
        self.ever_connected = False  # this connection reached the backend once
        self.xyz: xyz.XyzRun | None = None  # the X/Y/Z plot in flight
        self.splits: list[batch_split.SplitBatch] = []  # batches split across workers
        # On (the docker's setting), generate/refine/inpaint results wait in the history as
        # previews to apply or discard; off (scripts), they land as layers at once.
        self.preview_results = False
        self.shown: ShownPreview | None = None  # the result in the preview layer
        self._loaded_docs: set[str] = set()  # documents whose saved history is merged in

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
        self._set(
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
            self.set_live(False)
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
            self.live_tick()
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
            self._set(message=getattr(exc, "message", None) or str(exc), level="error")
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
            with self._preview_hidden(doc):
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

    def xyz_plot(
        self, params: Params, rows: list[tuple[str, str]], cells_group: bool = False, doc=None
    ) -> int:
        """A1111's X/Y/Z plot: `rows` are up to three (axis type, values) pairs, X first, in
        A1111's words and value syntax (shared/xyz_axes.py). Each cell is a generate job of
        its own through the backend's queue; when all are back, the grid comes in as a new
        layer (and, with `cells_group`, every cell as a layer of a group). Returns the number
        of cells queued (0 when refused: the message says why)."""
        if self.xyz is not None:
            self._set(message="An X/Y/Z plot is running: wait for it, or cancel.", level="error")
            return 0
        # One seed for every cell (A1111 picks one random seed for the grid), so the cells
        # differ only in what the axes vary.
        params = self._with_job_seed(params)
        try:
            base, pending = self._build("generate", params, doc)
            t = pending.plan.target
            run = xyz.plan_run(base, rows, t.w, t.h)
            run.group = cells_group
            if self.session is None:
                raise SessionError("Not connected: set the backend address and connect.")
            self.xyz = run
            for i, cell in enumerate(run.cells):
                cell_pending = dataclasses.replace(pending, action="xyz")
                run.job_ids[self.session.submit(cell.job, cell_pending)] = i
        except Exception as exc:  # PlanError, SessionError, a DreamwireError naming the axis
            self._xyz_abort(getattr(exc, "message", None) or str(exc))
            return 0
        self._set(message=f"X/Y/Z plot: {run.total} cells queued.", level="info", step=0, total=0)
        return run.total

    def _xyz_abort(self, message: str) -> None:
        run, self.xyz = self.xyz, None
        if run is not None and self.session is not None:
            for jid in run.job_ids:
                self.session.cancel(jid)
        self.status.preview = self.status.progress = None
        self._set(message=message, level="error")

    def _xyz_result(self, pending: Pending, result) -> None:
        run = self.xyz
        if run is None or result.job_id not in run.job_ids:
            return  # a cell of a grid given up on
        gen = result.images[0]
        run.add(result.job_id, jobs.crop_result(np.asarray(gen.image), pending.plan), gen.infotext)
        if not run.done:
            self._set(message=f"X/Y/Z plot: {len(run.images)} of {run.total} cells.", level="info")
            return
        self.xyz = None
        doc = pending.doc_key
        if not host.is_open(doc):
            self._set(message="The document was closed before the grid was done.", level="warning")
            return
        grid = host.draw_labels(run.compose(), run.grid.labels(), run.grid.band)
        w, h = run.grid.size
        name = "X/Y/Z plot: " + " x ".join(label for _, label, _ in run.axes_text)
        host.add_result_layer(doc, doc.rootNode(), name, grid, Rect(0, 0, w, h), None)
        if run.group:  # a second undo step: the cells enter in their group at once
            cells = host.ResultGroup(doc, f"{name} (cells)")
            for i in range(run.total):
                cells.add(run.cell_name(i), run.images[i], pending.plan.target)
            cells.insert()
        self.applied.append({"name": name, "seed": gen.seed, "masked": "", "job_id": ""})
        host.refresh(doc)
        self._set(message=f"X/Y/Z plot: added the {run.total}-cell grid.", level="info")

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
                self._set(message="Cancelling…", level="info")

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
        params = self._with_job_seed(params)
        try:
            # The document is checked first: its problems are the ones the artist can fix now.
            job, pending = self._build(action, params, doc, choice)
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
            self._set(message=str(exc), level="error")
            return None
        except Exception as exc:  # a DreamwireError from validate(), or a Krita surprise
            self._set(message=getattr(exc, "message", None) or str(exc), level="error")
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
        self._set(
            message=f"{action.capitalize()}: queued. {note}".strip(), level="info", step=0, total=0
        )
        return job_id

    @staticmethod
    def _with_job_seed(params: Params) -> Params:
        """Each queued job its own seed: the panel's when fixed, else a new random one
        (logic/queue.py), known here so the queue and the history can show it."""
        seed = jobqueue.job_seed(params.seed, params.fixed_seed)
        return dataclasses.replace(params, seed=seed, fixed_seed=True)

    def _build(self, action: str, params: Params, doc=None, choice=None):
        doc = doc or host.active_document()
        with self._preview_hidden(doc):
            return self._build_shown(action, params, doc, choice)

    @contextlib.contextmanager
    def _preview_hidden(self, doc):
        """The result preview layer is out of the picture while a job reads the canvas:
        it is a choice not made yet, not the artist's painting."""
        shown = self.shown
        hidden = (
            shown is not None
            and host.doc_key(doc) == shown.doc_key
            and host.set_visible(doc, shown.node_id, False)
        )
        try:
            yield
        finally:
            if hidden:
                host.set_visible(doc, shown.node_id, True)

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
            self._set(message="The document was closed before the map arrived.", level="warning")
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
            self._set(message=f"Could not add the control layer: {exc}", level="error")
            return
        self._set(message=f"Added the control layer {name!r}.", level="info")

    def _select_result(self, pending: Pending, result) -> None:
        doc, region = pending.doc_key, pending.plan.region
        if not host.is_open(doc):
            self._set(message="The document was closed before the mask arrived.", level="warning")
            return
        try:
            data = click_mask.selection_bytes(result.images[0].image, (region.w, region.h))
            host.replace_selection(doc, data, region)
        except Exception as exc:  # a Krita surprise: say so, keep the docker alive
            self._set(message=f"Could not select: {exc}", level="error")
            return
        host.refresh(doc)
        what = "the subject" if pending.action == "subject" else "the clicked object"
        self._set(message=f"Selected {what}.", level="info")

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
            self._set(message=getattr(exc, "message", None) or str(exc), level="error")
            return None
        what = "Added a pose layer" if new else "Added a person"
        self._set(message=f"{what}: drag its joints with the shape tool.", level="info")
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
            self._set(message=str(exc), level="error")
            return None
        self._set(
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
        self._set(state=state, label=view.label, message=view.message, level=view.level)

    def on_welcome(self, welcome) -> None:
        self.welcome = welcome
        self.welcome_version += 1  # the docker refills its lists when this moves
        self.ui.refresh(self)

    def on_progress(self, pending, progress) -> None:
        if pending is not None and pending.action == "live":
            return  # live jobs come and go quietly; the preview layer is their progress
        if pending is not None and pending.action == "xyz" and self.xyz is not None:
            # One progress for the whole grid: cells done, then the running cell's steps.
            run = self.xyz
            self.status.step, self.status.total = len(run.images), run.total
            self.status.message = f"X/Y/Z plot: {len(run.images)} of {run.total} cells"
            self.status.progress = prog.ProgressView(
                self.status.message, len(run.images), run.total
            )
            self.ui.refresh(self)
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
                self._set(message=f"Batch: {len(split.results)} part(s) back.", level="info")
                return
            self.splits.remove(split)
            result = merged  # every part back: they land as the one batch they are
        if pending.action == "xyz":
            self._xyz_result(pending, result)
            return
        if pending.action == "live":
            self._live_result(pending, result)
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
                self._remember(pending, gen, jobs.crop_result(np.asarray(gen.image), pending.plan))
            self._set(
                message="The document was closed before the result arrived; "
                "it is in the history (Insert again) and the backend's output folder.",
                level="warning",
            )
            return
        previews = pending.action in hist.PREVIEW_ACTIONS and self.preview_results
        try:
            # DAAM's overlays belong beside their image: those results land at once.
            if previews and not any(g.heat_maps for g in result.images):
                self._preview_result(doc, pending, result)
                return
            placed = self._apply(doc, pending, result)
        except Exception as exc:  # a Krita surprise: say so, keep the docker alive
            self._set(message=f"Could not place the result: {exc}", level="error")
            return
        self._set(message=f"Added {len(placed)} layer(s).", level="info")

    def on_error(self, pending, message: str) -> None:
        if pending is not None and pending.action == "live":
            if self.live.state.finished(pending.job_id):
                self._set(message=f"Live: {message}", level="error")
            return
        if pending is not None and pending.action == "xyz":
            if self.xyz is not None:
                self._xyz_abort(f"X/Y/Z plot stopped: a cell failed: {message}")
            return
        self._end_split(pending)
        self.status.preview = self.status.progress = None
        self._set(message=message, level="error")

    def on_cancelled(self, pending) -> None:
        if pending.action == "live":
            self.live.state.finished(pending.job_id)  # superseded, or Live switched off
            return
        if pending.action == "xyz":
            if self.xyz is not None:  # one cell cancelled: the grid cannot be whole
                self._xyz_abort("X/Y/Z plot cancelled; the document was not changed.")
                self.status.level = "info"
            return
        landed = self._end_split(pending)
        self.status.preview = self.status.progress = None
        unchanged = (
            "the parts already made were added" if landed else "the document was not changed"
        )
        self._set(message=f"Cancelled; {unchanged}.", level="info")

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
            self._remember(pending, gen, rgba, doc, applied=True)
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

    def _entry(self, pending: Pending, gen, rgba: np.ndarray, doc, applied: bool) -> Entry:
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

    def _remember(self, pending: Pending, gen, rgba: np.ndarray, doc=None, applied=False) -> None:
        self.history.add(self._entry(pending, gen, rgba, doc or pending.doc_key, applied))
        if applied:
            self._save_history(doc)

    # -- history: previews to apply or discard (Krita AI Diffusion's) -----------------
    def _preview_result(self, doc, pending: Pending, result) -> None:
        batch = [
            self._entry(pending, g, jobs.crop_result(np.asarray(g.image), pending.plan), doc, False)
            for g in result.images
        ]
        self.history.add_batch(batch)
        self._save_history(doc)
        self.show_preview(0, doc)
        n = len(batch)
        self._set(
            message=f"{n} result{'s' if n > 1 else ''} to choose from: pick one in the "
            "history, then Apply it or Discard it.",
            level="info",
        )

    def show_preview(self, index: int, doc=None) -> bool:
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
                self.hide_preview()  # one preview layer at a time, in one document
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
            self._set(message=str(exc), level="error")
            return False
        self.shown = ShownPreview(host.doc_key(doc), node, entry.key, entry.plan.target, artist)
        return True

    def hide_preview(self) -> None:
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
        try:
            entry = self.history[index]
            if entry.image is None:
                raise PlanError(hist.NO_FULL_IMAGE)
            doc = doc or host.active_document()
            self.hide_preview()
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
            self._set(message=str(exc), level="error")
            return None
        entry.applied = True
        self.history.changed()
        self.applied.append(record)
        self._save_history(host.document_by_key(entry.doc_key))
        self._set(message=f"Applied {name!r}.", level="info")
        return name

    def reinsert(self, index: int, doc=None) -> None:
        self.apply(index, doc)

    def discard(self, index: int) -> None:
        """Take entry `index` out of the history (and its preview off the canvas)."""
        try:
            entry = self.history.remove(index)
        except IndexError:
            return
        if self.shown is not None and self.shown.key == entry.key:
            self.hide_preview()
        self._save_history(host.document_by_key(entry.doc_key))
        self._set(message="Discarded the result.", level="info")

    def copy_params(self, index: int, base: Params) -> Params:
        """Reuse settings: the entry's parameters, as its infotext records them."""
        return params_from_infotext(self.history[index].infotext, base)

    def load_history(self, doc) -> int:
        """Merge the history saved in `doc` (once per document and session); returns how
        many entries were new."""
        key = host.doc_key(doc)
        if key in self._loaded_docs:
            return 0
        self._loaded_docs.add(key)
        saved = hist.load(host.annotation(doc, hist.ANNOTATION_TYPE))
        return self.history.add_saved(saved, key)

    def _save_history(self, doc) -> None:
        """The document's entries into its annotation, saved in the .kra with it."""
        if doc is None or not host.is_open(doc):
            return
        key = host.doc_key(doc)
        self.load_history(doc)  # what it held before, unless merged already: kept
        data = hist.dump(self.history.of_document(key))
        host.set_annotation(doc, hist.ANNOTATION_TYPE, hist.ANNOTATION_TEXT, data)

    # -- live -----------------------------------------------------------------------
    def set_live(self, on: bool, params_fn=None, doc=None) -> None:
        """Switch Live on for `doc` (the active document), reading the panel through
        `params_fn` on every tick; off cancels its job and removes the preview layer."""
        lm = self.live
        if on:
            try:
                doc = doc or host.active_document()
                host.doc_info(doc)
            except PlanError as exc:
                self._set(message=str(exc), level="error")
                return
            lm.on, lm.doc, lm.params_fn = True, doc, params_fn or (lambda: Params())
            lm.state.reset()
            if lm.seed is None:
                seed = int(lm.params_fn().seed)
                lm.seed = seed if seed >= 0 else live.new_seed()
            self._set(message="Live: paint, and the preview follows.", level="info")
            return
        if not lm.on:
            return
        lm.on = False
        if lm.state.job_id and self.session is not None:
            self.session.cancel(lm.state.job_id)
        lm.state.reset()
        if lm.doc is not None and host.is_open(lm.doc):
            host.remove_node(lm.doc, lm.preview_id)
        lm.preview_id = lm.result = lm.target = None
        self._set(message="Live off.", level="info")

    def live_new_seed(self) -> int:
        self.live.seed = live.new_seed()
        self.live.state.invalidate()
        return self.live.seed

    def live_tick(self) -> None:
        lm = self.live
        if lm.doc is None or not host.is_open(lm.doc):
            lm.on = False
            lm.state.reset()
            self._set(message="Live off: its document was closed.", level="info")
            return
        if self.session is None or self.session.state != "connected":
            return
        if not lm.due():
            return
        try:
            fp = self._live_fingerprint(lm.doc, lm.params_fn())
        except Exception as exc:  # a Krita surprise mid-edit: try again next tick
            self.status.message = f"Live: could not read the canvas: {exc}"
            return
        decision = lm.state.observe(fp)
        if decision.submit:
            self._live_submit(lm.doc, lm.params_fn(), fp, decision.cancel)

    def _live_extra(self, doc, params: Params) -> dict:
        lm = self.live
        sel = host.selection_rect(doc)
        marks = host.annotation(doc, ctl.ANNOTATION_TYPE) or b""
        params = params.for_job()  # another style's template is a change too
        return {
            "params": [params.prompt, params.negative, params.model, params.sampler, params.cfg]
            + [params.distilled_cfg],
            "strength": lm.strength,
            "seed": lm.seed,
            "size": [doc.width(), doc.height()],
            "selection": None if sel is None else [sel.x, sel.y, sel.w, sel.h],
            "marks": marks.hex(),
        }

    def _live_fingerprint(self, doc, params: Params) -> str:
        return live.fingerprint(
            host.layer_samples(doc), self.live.preview_id, self._live_extra(doc, params)
        )

    def _live_submit(self, doc, params: Params, fp: str, cancel: str | None) -> None:
        lm = self.live
        if cancel and self.session is not None:
            self.session.cancel(cancel)
        # The preview layer is hidden while the canvas is read, so it never feeds back.
        shown = host.set_visible(doc, lm.preview_id, False)
        try:
            job, pending = self._build("refine", params, doc)
            family = model_family(params.model, self.welcome)
            sampling = live.live_sampling(
                params.sampler, params.cfg, params.model, self.welcome, family
            )
            job = live.live_job(job, sampling, lm.strength, lm.seed)
            self.last_job = job
            pending.action = "live"
            job_id = self.session.submit(job, pending)
        except Exception as exc:  # PlanError, SessionError, a DreamwireError, Krita
            lm.state.failed(fp)
            self._set(message=f"Live: {getattr(exc, 'message', None) or exc}", level="error")
            return
        finally:
            if shown:
                host.set_visible(doc, lm.preview_id, True)
        lm.state.submitted(job_id, fp)
        lm.sampling_note = sampling.note

    def _live_result(self, pending: Pending, result) -> None:
        lm = self.live
        if not lm.state.finished(pending.job_id) or not lm.on or not result.images:
            return  # superseded, or Live was switched off meanwhile
        doc = pending.doc_key
        if not host.is_open(doc):
            return
        rgba = jobs.crop_result(np.asarray(result.images[0].image), pending.plan)
        keep = host.KeepActive(doc)
        try:
            lm.preview_id = host.write_preview_layer(
                doc,
                lm.preview_id,
                live.PREVIEW_LAYER,
                rgba,
                pending.plan.target,
                pending.mask,
                lm.target,
            )
        except Exception as exc:
            self._set(message=f"Live: could not show the result: {exc}", level="error")
            return
        keep.add(lm.preview_id)
        keep.finish()
        lm.result = (rgba, pending.plan.target, pending.mask, result.images[0].seed)
        lm.target = pending.plan.target
        lm.prompt = pending.params.prompt
        lm.shown += 1
        self._set(
            message=f"Live: seed {lm.seed}, strength {lm.strength:g}; {lm.sampling_note}.",
            level="info",
        )

    def live_apply(self) -> str | None:
        """Copy the preview into a new paint layer right below it; Live stays on."""
        lm = self.live
        if lm.result is None or lm.doc is None or not host.is_open(lm.doc):
            self._set(message="Live: no preview to apply yet.", level="warning")
            return None
        rgba, target, mask, seed = lm.result
        name = naming.layer_name(lm.prompt, seed, "live")
        keep = host.KeepActive(lm.doc)
        keep.add(host.add_layer_below(lm.doc, lm.preview_id, name, rgba, target, mask))
        keep.finish()
        self.applied.append(
            {
                "name": name,
                "seed": seed,
                "masked": "alpha" if mask is not None else "",
                "job_id": "",
            }
        )
        self._set(message=f"Applied the preview as {name!r}.", level="info")
        return name

    def _set(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self.status, k, v)
        self.ui.refresh(self)


@dataclass
class ShownPreview:
    """The history entry the preview layer shows, and where."""

    doc_key: str
    node_id: str
    key: str  # the entry's
    target: Rect
    artist_layer: str | None  # the layer active before the preview came: active again after


@dataclass
class LiveMode:
    """What Live mode holds between ticks (decisions are logic/live.py's)."""

    on: bool = False
    doc: object = None
    params_fn: object = None
    strength: float = live.LIVE_STRENGTH
    seed: int | None = None
    state: live.LiveState = field(default_factory=live.LiveState)
    preview_id: str | None = None
    target: object = None  # where the last preview was written
    result: tuple | None = None  # (rgba, target, mask, seed) of the preview shown
    prompt: str = ""
    sampling_note: str = ""
    shown: int = 0  # previews shown so far, for tests
    poll_s: float = 0.1  # Krita AI Diffusion polls at 0.1 s
    _last_poll: float = -1.0

    def due(self) -> bool:
        now = self.state.clock()
        if now - self._last_poll < self.poll_s:
            return False
        self._last_poll = now
        return True
