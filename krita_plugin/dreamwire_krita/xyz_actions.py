"""A1111's X/Y/Z plot from the docker: one generate job per cell through the backend's
queue, the grid landing as one layer when every cell is back (the grid's layout, labels and
axes are logic/xyz.py's)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from . import krita_host as host
from .logic import jobs, xyz
from .logic import progress as prog
from .logic.geometry import Rect
from .logic.params import Params
from .logic.session import Pending, SessionError

if TYPE_CHECKING:
    from .controller import Controller


class XyzActions:
    def __init__(self, owner: Controller):
        self.owner = owner
        self.run: xyz.XyzRun | None = None  # the plot in flight

    def plot(
        self, params: Params, rows: list[tuple[str, str]], cells_group: bool = False, doc=None
    ) -> int:
        """`rows` are up to three (axis type, values) pairs, X first, in A1111's words and
        value syntax (shared/xyz_axes.py). Each cell is a generate job of its own; when all
        are back, the grid comes in as a new layer (and, with `cells_group`, every cell as a
        layer of a group). Returns the number of cells queued (0 when refused: the message
        says why)."""
        owner = self.owner
        if self.run is not None:
            owner.show_status(
                message="An X/Y/Z plot is running: wait for it, or cancel.", level="error"
            )
            return 0
        # One seed for every cell (A1111 picks one random seed for the grid), so the cells
        # differ only in what the axes vary.
        params = owner.with_job_seed(params)
        try:
            base, pending = owner.build("generate", params, doc)
            t = pending.plan.target
            run = xyz.plan_run(base, rows, t.w, t.h)
            run.group = cells_group
            if owner.session is None:
                raise SessionError("Not connected: set the backend address and connect.")
            self.run = run
            for i, cell in enumerate(run.cells):
                cell_pending = dataclasses.replace(pending, action="xyz")
                run.job_ids[owner.session.submit(cell.job, cell_pending)] = i
        except Exception as exc:  # PlanError, SessionError, a DreamwireError naming the axis
            self.abort(getattr(exc, "message", None) or str(exc))
            return 0
        owner.show_status(
            message=f"X/Y/Z plot: {run.total} cells queued.", level="info", step=0, total=0
        )
        return run.total

    def abort(self, message: str) -> None:
        run, self.run = self.run, None
        session = self.owner.session
        if run is not None and session is not None:
            for jid in run.job_ids:
                session.cancel(jid)
        self.owner.status.preview = self.owner.status.progress = None
        self.owner.show_status(message=message, level="error")

    def on_progress(self) -> None:
        """One progress for the whole grid: cells done, then the running cell's steps."""
        run, status = self.run, self.owner.status
        status.step, status.total = len(run.images), run.total
        status.message = f"X/Y/Z plot: {len(run.images)} of {run.total} cells"
        status.progress = prog.ProgressView(status.message, len(run.images), run.total)
        self.owner.ui.refresh(self.owner)

    def on_result(self, pending: Pending, result) -> None:
        run, say = self.run, self.owner.show_status
        if run is None or result.job_id not in run.job_ids:
            return  # a cell of a grid given up on
        gen = result.images[0]
        run.add(result.job_id, jobs.crop_result(np.asarray(gen.image), pending.plan), gen.infotext)
        if not run.done:
            say(message=f"X/Y/Z plot: {len(run.images)} of {run.total} cells.", level="info")
            return
        self.run = None
        doc = pending.doc_key
        if not host.is_open(doc):
            say(message="The document was closed before the grid was done.", level="warning")
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
        self.owner.applied.append({"name": name, "seed": gen.seed, "masked": "", "job_id": ""})
        host.refresh(doc)
        say(message=f"X/Y/Z plot: added the {run.total}-cell grid.", level="info")

    def on_error(self, message: str) -> None:
        if self.run is not None:
            self.abort(f"X/Y/Z plot stopped: a cell failed: {message}")

    def on_cancelled(self) -> None:
        if self.run is not None:  # one cell cancelled: the grid cannot be whole
            self.abort("X/Y/Z plot cancelled; the document was not changed.")
            self.owner.status.level = "info"
