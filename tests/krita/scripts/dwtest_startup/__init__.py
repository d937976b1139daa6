"""A startup plugin for the tests: drives the Dreamwire docker in full Krita under Xvfb.

It waits for the main window, then runs a list of steps on QTimers (Krita's event loop
keeps running between them, as it would for an artist), writes the JSON result file and
quits Krita.
"""

import os
import time
import traceback

import numpy as np
from krita import Extension, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

from . import dwtest

SRGB = "sRGB-elle-V2-srgbtrc.icc"


class Driver:
    def __init__(self):
        self.out = {"steps": []}
        self.cfg = dwtest.config()
        self.docker = None
        self.doc = None
        self.steps = [
            self.find_docker,
            self.wait_connected,
            self.layout,
            self.styles_and_pickers,
            self.style_editor,
            self.no_document,
            self.open_document,
            self.generate,
            self.wait_generated,
            self.settle("generate"),
            self.inpaint,
            self.wait_inpainted,
            self.settle("inpaint"),
            self.vector_pose,
            self.controls_and_regions,
            self.reference_and_region,
            self.live_on,
            self.live_first,
            self.settle("live preview"),
            self.live_second,
            self.live_apply_off,
            self.settle("live apply"),
            self.actions,
            self.actions_cancelled,
            self.tiling,
            self.tiling_cancelled,
            self.depth_library,
            self.depth_merge,
            self.pose_template,
            self.pose_undo,
            self.pose_follows,
            self.pose_job,
            self.manual_shots,
            self.finish,
        ]
        self.deadline = time.monotonic() + self.cfg.get("timeout", 150)

    # -- machinery ---------------------------------------------------------------------------
    def start(self):
        import faulthandler

        # If Krita's event loop ever blocks, leave the Python stacks next to the result.
        self._stacks = open(os.environ["DW_TEST_RESULT"] + ".stacks", "w")  # noqa: SIM115
        faulthandler.dump_traceback_later(self.cfg.get("timeout", 150) + 30, file=self._stacks)
        QTimer.singleShot(500, self.next)

    def next(self):
        """Run the current step; it returns True when done, False to be retried shortly."""
        if not self.steps:
            return
        step = self.steps[0]
        try:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"step {step.__name__} did not finish in time")
            done = step()
        except Exception:
            self.out["error"] = traceback.format_exc()
            self.steps = [self.finish]
            done = False
        if done:
            with open(os.environ["DW_TEST_RESULT"] + ".stacks", "a") as f:
                f.write(f"done {step.__name__}\n")
            self.out["steps"].append(step.__name__)
            self.steps.pop(0)
        if self.steps:
            QTimer.singleShot(100, self.next)

    def settle(self, name):
        """A step that records the active layer's name once insertions have settled
        (Krita's view activates layers through queued signals; masks take a while)."""
        SETTLE_S = 1.8

        def step():
            from dreamwire_krita import krita_host as host

            if not hasattr(self, "_settle_until"):
                self._settle_until = time.monotonic() + SETTLE_S
            if time.monotonic() < self._settle_until or host.masks_pending():
                return False
            del self._settle_until
            node = self.doc.activeNode()
            self.out.setdefault("active_after", {})[name] = [
                self.active_before,
                node.name() if node is not None else None,
            ]
            return True

        step.__name__ = f"settle_{name.replace(' ', '_')}"
        return step

    def remember_active(self):
        node = self.doc.activeNode()
        self.active_before = node.name() if node is not None else None

    def applied_layer(self):
        """The layer the last Apply added (results wait as previews until then)."""
        name = self.docker.controller.applied[-1]["name"]
        return [n for n in self.doc.rootNode().childNodes() if n.name() == name][-1]

    def apply_preview(self):
        """Apply the result the preview layer shows, as an artist would; False until one
        arrived. Records what the docker showed before the press."""
        from dreamwire_krita.logic import history as hist

        d = self.docker
        shown = d.controller.results.shown
        # Picking a row (Reuse) previews that result too: wait for this job's own.
        if shown is None or not shown.key.startswith(self.job_id + ":"):
            if d.controller.status.level == "error":
                raise RuntimeError(d.controller.status.message)
            return None
        # The global selection is a node too: the top layer is the last other one.
        names = [n.name() for n in self.doc.rootNode().childNodes() if n.type() != "selectionmask"]
        seen = {
            "preview_on_top": names[-1] == hist.PREVIEW_LAYER,
            "rows": d.history_panel.list.count(),
            "row_selected": d.history_panel.list.currentRow(),
            "applied_before": len(d.controller.applied) - self.applied,
            "message": d.message.text(),
        }
        d.history_panel.apply_button.click()
        return seen

    # -- steps ---------------------------------------------------------------------------------
    def find_docker(self):
        from dreamwire_krita.docker import DreamwireDocker

        found = [d for d in Krita.instance().dockers() if isinstance(d, DreamwireDocker)]
        if not found:
            return False
        self.docker = found[0]
        self.docker.show()
        self.out["docker_title"] = self.docker.windowTitle()
        return True

    def wait_connected(self):
        d = self.docker
        if d.controller.status.state != "connected" or d.model.count() == 0:
            return False
        self.out["state_label"] = d.state_label.text()
        self.out["models"] = [d.model.itemText(i) for i in range(d.model.count())]
        self.out["samplers"] = d.sampler.count()
        self.out["upscalers"] = [d.upscaler.itemText(i) for i in range(d.upscaler.count())]
        c = d.upscale_choice()
        self.out["upscale_choice"] = [c.factor, c.upscaler, c.refine, c.strength]
        return True

    def layout(self):
        """How tall the docker is in each workspace."""
        from dreamwire_krita.logic import workspaces

        d = self.docker
        app = QApplication.instance()
        sizes = {}
        for ws in workspaces.Workspace:
            d.set_workspace(ws)
            app.processEvents()
            scroll = d.scroll
            # Without scrolling: the fixed parts plus the scroll area's whole content.
            needed = (
                d.minimumSizeHint().height()
                - scroll.minimumSizeHint().height()
                + d.body.sizeHint().height()
            )
            sizes[ws.value] = {"minimum": d.minimumSizeHint().height(), "needed": needed}
        d.set_workspace(workspaces.Workspace.GENERATE)
        app.processEvents()
        win = Krita.instance().activeWindow().qwindow()
        screen = app.primaryScreen().geometry()
        self.out["layout"] = {
            "sizes": sizes,
            "screen": [screen.width(), screen.height()],
            "window": [win.frameGeometry().width(), win.frameGeometry().height()],
            "window_minimum": win.minimumSizeHint().height(),
            "docker_visible": d.isVisible() and d.height() > 0,
            "status_visible": d.progress.isVisible()
            and d.message.isVisible()
            and d.cancel_button.isVisible(),
            "pages": [d.pages.currentIndex(), d.pages.count()],
        }
        return True

    def styles_and_pickers(self):
        """Style files in Krita's resource folder, one click to switch, the grouped model
        picker's search and the LoRA picker, as an artist uses them."""
        import json

        from dreamwire_krita.logic import styles
        from dreamwire_krita.logic.geometry import Rect
        from dreamwire_krita.logic.jobs import generate_job
        from dreamwire_krita.logic.regions import plan_generate
        from PyQt5.QtCore import Qt
        from PyQt5.QtTest import QTest

        d, c = self.docker, self.docker.controller
        bar, mp, combo = d.style_bar, d.model_picker, d.model
        lp = d.lora_picker

        def listed():
            return [lp.combo.itemText(i) for i in range(lp.combo.count())]

        d.model.setCurrentText("tiny-sd1")
        loras = listed()  # tiny-sd1's: SD1 LoRAs and those of unknown family
        ink = {"name": "Ink", "checkpoints": ["tiny-sdxl"], "prompt": "ink drawing of {prompt}"}
        ink.update(negative="colour", sampler="Euler a", steps=3, cfg=4.5)
        ink["loras"] = [{"name": loras[0], "weight": 0.5}] if loras else []
        files = {
            "ink.json": json.dumps(ink),
            "gone.json": json.dumps({"name": "Gone", "checkpoints": ["deleted-model"]}),
            "broken.json": '{"name": "Broken", "steps": 0}',
        }
        bar.store.folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (bar.store.folder / name).write_text(text)
        bar.combo.showPopup()  # opening the list reads the folder again
        bar.combo.hidePopup()
        r = {
            "folder": str(bar.store.folder),
            "styles": [bar.combo.itemText(i) for i in range(bar.combo.count())],
            "problems": [bar.problem_label.text(), bar.problem_label.isVisibleTo(d)],
        }

        def pick(name):  # one click on the combo's entry
            i = bar.combo.findData(name)
            bar.combo.setCurrentIndex(i)
            bar.combo.activated.emit(i)

        d.model.setCurrentText("tiny-sd1")
        pick("Ink")
        r["ink"] = [combo.currentText(), d.sampler.currentText(), d.steps.value(), d.cfg.value()]
        d.prompt.setPlainText("a cat")
        d.negative.setPlainText("dogs")
        job = generate_job(d.params(), plan_generate(Rect(0, 0, 64, 64), None))
        r["ink_job"] = [job.prompt, job.negative, d.params().prompt]
        pick("Gone")
        r["gone"] = [combo.currentText(), d.message.text(), d.params().style]
        # Save current as style (the dialog's values), then delete its file.
        path = bar.save(styles.from_panel("Mine", "tiny-sd1", "Euler", 5, 6.0, None, "", "", ""))
        saved = json.loads((bar.store.folder / "mine.json").read_text())
        r["saved"] = [path is not None, bar.name(), saved["checkpoints"], saved["steps"]]
        bar.delete_current(confirm=False)
        r["deleted"] = [(bar.store.folder / "mine.json").exists(), bar.name()]
        # The model picker: family headers that cannot be picked, what each model lacks.
        items = combo.model()
        r["models"] = [
            [combo.itemText(i), bool(items.item(i).flags() & Qt.ItemIsEnabled)]
            + [items.item(i).toolTip()]
            for i in range(combo.count())
        ]
        r["missing"] = sorted(c.welcome.model_missing)
        r["editable"] = combo.isEditable()
        combo.setCurrentText("tiny-sd1")
        QTest.keyClicks(mp.search, "xl")
        r["search"] = mp.found.stringList()
        before = combo.currentText()
        mp.search.returnPressed.emit()
        r["searched"] = [combo.currentText(), before]
        mp.search.setText("no-such-model")
        mp.search.returnPressed.emit()
        r["unknown"] = combo.currentText()
        # The LoRA picker writes a tag, then changes its weight; on tiny-sdxl it lists
        # that family's LoRAs, All the others after them.
        r["loras"] = loras
        r["lora_lists"] = {"model": combo.currentText(), "own": listed()}
        lp.show_all.setChecked(True)
        r["lora_lists"]["all"] = listed()
        lp.show_all.setChecked(False)
        lp.combo.setCurrentText("tiny_xl_style")
        d.lora_picker.slider.setValue(75)
        d.lora_picker.add_button.click()
        d.lora_picker.slider.setValue(40)
        d.lora_picker.add_button.click()
        r["lora_prompt"] = d.prompt.toPlainText()
        if self.cfg.get("shots"):  # the style, model and LoRA line, for the manual
            d.body.grab().save(os.path.join(self.cfg["shots"], "docker-styles.png"))
        # The settings dialog keeps its own feedback line beside the docker's.
        from dreamwire_krita.docker import SettingsDialog

        dlg = SettingsDialog(c.settings, d)
        dlg.address.setText("localhost:5790")
        dlg.accept()  # refused: the reason shows in the dialog, which stays open
        r["settings_refused"] = [dlg.feedback.text(), dlg.result()]
        dlg.reject()
        pick("")  # back to no style for the steps after this one
        for name in files:
            (bar.store.folder / name).unlink()
        bar.reload()
        r["after"] = [d.params().style, bar.problem_label.isVisibleTo(d)]
        d.prompt.setPlainText("")
        d.negative.setPlainText("")
        self.out["styles"] = r
        return True

    def style_editor(self):
        """The editor from the button beside the style combo: duplicate a shipped style,
        change its steps, save; the copy is in the combo and on disk."""
        import json

        d, bar = self.docker, self.docker.style_bar
        r = {"button": [bar.edit_button.isVisibleTo(d), bar.edit_button.parent() is bar]}
        panel = [d.model.currentText(), d.sampler.currentText(), d.steps.value(), d.cfg.value()]
        dlg = bar.open_editor()
        dlg.show()
        i = dlg.list.findData("SDXL")
        dlg.list.setCurrentIndex(i)
        dlg.list.activated.emit(i)
        r["shown"] = [dlg.base.name, dlg.base.builtin, dlg.delete_button.isEnabled()]
        # SDXL runs on tiny-sdxl here (its family's model): that family's LoRAs to add.
        r["lora_add"] = [dlg.lora_add.itemText(i) for i in range(dlg.lora_add.count())]
        dlg.duplicate_button.click()
        r["copy"] = [dlg.base.name, dlg.name.text()]
        dlg.steps.setValue(7)
        dlg.name.setText("SD1.5")  # a shipped style's name: refused, nothing written
        dlg.save_button.click()
        r["clash"] = [dlg.feedback.text(), dlg.isVisible()]
        dlg.name.setText(r["copy"][0])
        dlg.save_button.click()
        r["saved"] = dlg.feedback.text()
        path = bar.store.folder / "sdxl-copy.json"
        r["file"] = json.loads(path.read_text()) if path.exists() else None
        r["combo"] = [bar.combo.itemText(i) for i in range(bar.combo.count())]
        dlg.reject()  # nothing unsaved: closes without asking
        r["closed"] = dlg.isVisible()
        i = bar.combo.findData("SDXL copy")
        bar.combo.setCurrentIndex(i)
        bar.combo.activated.emit(i)
        r["picked"] = [d.steps.value(), d.model.currentText()]
        bar.combo.setCurrentIndex(0)
        bar.combo.activated.emit(0)
        path.unlink(missing_ok=True)
        bar.reload()
        # The steps after this one start from the panel as it was.
        d.model.setCurrentText(panel[0])
        d.sampler.setCurrentText(panel[1])
        d.steps.setValue(panel[2])
        d.cfg.setValue(panel[3])
        self.out["style_editor"] = r
        return True

    def no_document(self):
        for doc in Krita.instance().documents():
            doc.close()
        self.docker.generate_button.click()
        self.out["no_document"] = self.docker.message.text()
        return True

    def open_document(self):
        k = Krita.instance()
        doc = k.createDocument(96, 64, "dw-gui", "RGBA", "U8", "", 72.0)
        win = k.activeWindow()
        win.addView(doc)
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.geometry import Rect

        rng = np.random.default_rng(3)
        img = rng.integers(0, 256, (64, 96, 4), dtype=np.uint8)
        img[..., 3] = 255
        paint, _ = host.add_result_layer(
            doc, doc.rootNode(), "paint", img, Rect(0, 0, 96, 64), None
        )
        host.refresh(doc)
        doc.setActiveNode(paint)  # the artist paints here; no insertion may take it away
        self.doc = doc
        self.out["active_is_doc"] = k.activeDocument() is not None
        return True

    def generate(self):
        d = self.docker
        if self.doc.activeNode() is None or self.doc.activeNode().name() != "paint":
            return False
        from dreamwire_krita import krita_host as host

        # What "Train LoRA from these layers" takes: the Layers docker's selection.
        self.out["selected_layers"] = [x.name for x in host.selected_layer_infos(self.doc)]
        self.remember_active()
        d.prompt.setPlainText("a lighthouse at dusk")
        d.model.setCurrentText("tiny-sd1")
        d.steps.setValue(2)
        d.seed.setValue(21)
        d.batch.setValue(1)
        d.strength.setValue(1.0)  # 100% and no selection: the one button generates
        self.applied = len(d.controller.applied)
        self.previews = 0
        self.out["two_pass_default"] = d.two_pass.isChecked()
        d.generate_button.click()
        self.job_id = d.controller.last_job.job_id
        self.out["after_click"] = d.message.text()
        # 96x64 is far below SD1's native size: one pass, no Hires.fix.
        self.out["generate_hires"] = repr(d.controller.last_job.hires)
        return True

    def wait_generated(self):
        d = self.docker
        if d.preview.pixmap() is not None and not d.preview.pixmap().isNull():
            self.previews += 1
        seen = self.apply_preview()
        if seen is None:
            return False
        layer = self.applied_layer()
        b = layer.bounds()
        self.out["generated"] = {
            "before_apply": seen,
            "layer": layer.name(),
            "bounds": [b.x(), b.y(), b.width(), b.height()],
            "history_items": d.history_panel.list.count(),
            "message": d.message.text(),
            "saw_preview": self.previews > 0,
        }
        # History: change the panel, then copy the result's parameters back into it.
        d.prompt.setPlainText("something else")
        d.seed.setValue(-1)
        d.steps.setValue(9)
        d.history_panel.list.setCurrentRow(0)
        d.history_panel.copy_button.click()
        self.out["copied_back"] = [d.prompt.toPlainText(), d.seed.value(), d.steps.value()]
        return True

    def inpaint(self):
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.geometry import Rect
        from krita import Selection

        d = self.docker
        # Hide the generated group so the inpaint works on the painted layer.
        self.applied_layer().setVisible(False)
        # Picking the row for Reuse previewed that result again: take it off the canvas.
        d.controller.results.hide()
        host.refresh(self.doc)
        self.before = host.read_visible(self.doc, Rect(0, 0, 96, 64))
        sel = Selection()
        sel.select(20, 16, 40, 30, 255)
        sel.feather(2)
        self.doc.setSelection(sel)
        self.sel = host.read_selection(self.doc, Rect(0, 0, 96, 64))
        d.strength.setValue(1.0)
        self.out["masked_content_items"] = [
            d.inpaint_fill.itemText(i) for i in range(d.inpaint_fill.count())
        ]
        self.out["masked_content_default"] = d.inpaint_fill.currentText()
        d.inpaint_fill.setCurrentText("latent nothing")
        d.two_pass.setChecked(False)  # saved with the panel on the next click
        self.applied = len(d.controller.applied)
        self.remember_active()
        d._show_kind()  # what the button's timer does
        self.out["button_label"] = d.generate_button.text()
        d.generate_button.click()  # 100% and a selection over paint: an inpaint
        self.job_id = d.controller.last_job.job_id
        self.out["inpaint_job_fill"] = d.controller.last_job.inpaint_fill
        self.out["inpaint_click"] = d.message.text()
        return True

    def wait_inpainted(self):
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.geometry import Rect

        d = self.docker
        if len(d.controller.applied) == self.applied:
            self.inpaint_seen = self.apply_preview()
            return False
        if host.masks_pending():
            return False
        host.refresh(self.doc)
        after = host.read_visible(self.doc, Rect(0, 0, 96, 64))
        layer = self.applied_layer()
        self.out["mask_notes"] = list(host.mask_notes)
        self.out["inpainted"] = {
            "before_apply": self.inpaint_seen,
            "masked": d.controller.applied[-1]["masked"],
            "children": [c.type() for c in layer.childNodes()],
            "outside_unchanged": bool(
                np.array_equal(after[self.sel == 0], self.before[self.sel == 0])
            ),
            "inside_changed": bool((after[self.sel == 255] != self.before[self.sel == 255]).any()),
            "selection_kept": self.doc.selection() is not None and self.doc.selection().width() > 0,
        }
        return True

    def vector_pose(self):
        """A vector layer with joint-coloured circles, marked as a pose control."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic import controls as ctl
        from dreamwire_krita.logic.regions import plan_generate

        from dreamwire.shared.imaging.openpose import COLORS, PoseFrame, PosePerson, draw_bodypose

        pts = [(0, 48, 12), (1, 48, 24), (2, 38, 24), (5, 58, 24), (8, 42, 50), (11, 54, 50)]
        circles = "".join(
            f'<circle cx="{x}" cy="{y}" r="2" fill="#%02x%02x%02x"/>' % COLORS[i] for i, x, y in pts
        )
        # The document is 72 dpi, so SVG points and document pixels coincide.
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="96pt" height="64pt" '
            f'viewBox="0 0 96 64">{circles}</svg>'
        )
        layer = self.doc.createVectorLayer("pose")
        self.doc.rootNode().addChildNode(layer, None)
        layer.addShapesFromSvg(svg)
        c = self.docker.controller
        c.set_mark(host.node_id(layer), ctl.ControlMark("openpose", 0.9), self.doc)
        for node_id in list(c.marks(self.doc)):
            if node_id != host.node_id(layer):
                c.set_mark(node_id, None, self.doc)
        plan = plan_generate(host.canvas_rect(self.doc), None)
        units = c._control_units(self.doc, plan)
        kp = np.zeros((18, 3))
        for i, x, y in pts:
            kp[i] = (x, y, 1)
        want = draw_bodypose(PoseFrame(plan.region.w, plan.region.h, [PosePerson(kp)]))
        from dreamwire_krita.logic.pose import joints_from_svg

        exported = layer.toSvg()
        self.out["vector_pose"] = {
            "svg_head": exported[:600],
            "joints": joints_from_svg(exported, self.doc.width(), self.doc.height()),
            "units": [(u.type, u.weight, list(u.image.shape)) for u in units],
            "exact": bool(units and np.array_equal(units[0].image, want)),
            "max_diff": int(np.abs(units[0].image.astype(int) - want).max()) if units else None,
        }
        return True

    def _layers(self):
        from dreamwire_krita import krita_host as host

        return [n.name() for n in host.iter_nodes(self.doc.rootNode())]

    def pose_template(self):
        """ "Add pose": a standing body in the selection, on a new pose control layer."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.pose import pose_joints
        from krita import Selection

        d, c = self.docker, self.docker.controller
        c.results.hide()  # a result the last steps left to choose: out of the undo checks
        sel = Selection()
        sel.select(20, 8, 40, 48, 255)
        self.doc.setSelection(sel)
        self.pose_before = {"layers": self._layers(), "steps": undo_steps()}
        d.add_pose_button.click()
        made = [n for n in host.iter_nodes(self.doc.rootNode()) if n.name() == "Pose"]
        layer = made[0]
        self.pose_id = host.node_id(layer)
        for node_id in list(c.marks(self.doc)):  # this layer's pose only, in the job
            if node_id != self.pose_id:
                c.set_mark(node_id, None, self.doc)
        names = sorted(s.name() for s in layer.shapes())
        joints = pose_joints(layer.toSvg(), self.doc.width(), self.doc.height())
        box = host.selection_rect(self.doc)
        self.wrist_from = next((j.x, j.y) for j in joints if j.index == 4)
        self.out["pose"] = {
            "message": d.message.text(),
            "type": layer.type(),
            "mark": [m.type for i, m in c.marks(self.doc).items() if i == self.pose_id],
            "shapes": [len([n for n in names if "_J" in n]), len([n for n in names if "_B" in n])],
            "in_selection": all(
                box.x <= j.x <= box.right and box.y <= j.y <= box.bottom for j in joints
            ),
            "steps": [self.pose_before["steps"], undo_steps()],
        }
        return True

    def pose_follows(self):
        """The docker's timer moves the dragged wrist's limbs; a job's control image is
        drawn from the joints, the moved wrist where it was dragged to."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.pose import pose_joints, svg_shapes
        from dreamwire_krita.logic.pose_template import stale_bones

        from dreamwire.shared.imaging.openpose import PoseFrame, PosePerson, draw_bodypose

        w, h = self.doc.width(), self.doc.height()
        svg = host.find_node(self.doc, self.pose_id).toSvg()
        if stale_bones(svg, w, h):
            return False
        joints = {j.index: (j.x, j.y) for j in pose_joints(svg, w, h)}
        limb = [s for s in svg_shapes(svg, w, h) if s.id and s.id.text() == "P00_B03"][0]
        # The job that Generate sends with no selection: its pose unit, drawn from the
        # joints as dragged, goes to the backend.
        from dataclasses import replace

        c = self.docker.controller
        Krita.instance().action("deselect").trigger()
        self.doc.waitForDone()
        kp = np.zeros((18, 3))
        for i, (x, y) in joints.items():
            kp[i] = (x, y, 1)
        c.status.level = "info"
        marks = {i: m.type for i, m in c.marks(self.doc).items()}
        for node_id in marks:  # this layer's pose only, in the job
            if node_id != self.pose_id:
                c.set_mark(node_id, None, self.doc)
        self.pose_job_id = c.generate(replace(self.docker.params(), steps=2, batch=1), self.doc)
        if self.pose_job_id is None:
            raise RuntimeError(c.status.message)
        job = c.last_job
        want = draw_bodypose(PoseFrame(job.width, job.height, [PosePerson(kp)]))
        pose = [u.image for u in job.controls if u.type == "openpose"]
        self.out["pose"]["follow"] = {
            "seconds": time.monotonic() - self.pose_t0,
            "wrist": [joints[4][0] - self.wrist_from[0], joints[4][1] - self.wrist_from[1]],
            "limb_ends": [
                limb.point(limb.cx - limb.rx, limb.cy),
                limb.point(limb.cx + limb.rx, limb.cy),
            ],
            "elbow_wrist": [joints[3], joints[4]],
            "units": [u.type for u in job.controls],
            "marks": sorted(marks.values()),
            "exact": bool(pose and np.array_equal(pose[0], want)),
        }
        return True

    def pose_job(self):
        """The backend ran it: its result waits in the history; discarded again."""
        c = self.docker.controller
        if c.status.level == "error":
            raise RuntimeError(c.status.message)
        h = c.results.history
        mine = [i for i in range(len(h)) if h[i].job_id == self.pose_job_id]
        if not mine:
            return False
        # The result waits in the history with its picture (the status line may already
        # show a later progress message, so it is not what is checked).
        entry = h[mine[0]]
        self.out["pose"]["job_done"] = [entry.image is not None, c.status.level]
        c.results.discard(mine[0])
        c.set_mark(self.pose_id, None, self.doc)  # and the pose layer out of the manual
        from dreamwire_krita import krita_host as host

        host.find_node(self.doc, self.pose_id).remove()
        paint = [n for n in self.doc.rootNode().childNodes() if n.name() == "paint"]
        self.doc.setActiveNode(paint[0])
        return True

    def pose_undo(self):
        """One Ctrl+Z takes an applied result away whole; two more the pose layer, which
        Ctrl+Shift+Z brings back with its shapes; then a joint is dragged."""
        from dreamwire_krita import krita_host as host
        from PyQt5.QtCore import QPointF

        k, c = Krita.instance(), self.docker.controller

        def undo(name="edit_undo"):
            k.action(name).trigger()
            self.doc.waitForDone()

        # Apply a result from the history (the Generate one, without a mask).
        h = c.results.history
        index = next(i for i in range(len(h)) if h[i].mask is None)
        before = {"layers": self._layers(), "steps": undo_steps()}
        name = c.results.apply(index, self.doc)
        r = {"applied": [name in self._layers(), before["steps"], undo_steps()]}
        undo()
        r["apply_undone"] = self._layers() == before["layers"]
        undo()
        undo()  # the pose layer's shapes, then the layer
        r["undone"] = self._layers() == self.pose_before["layers"]
        undo("edit_redo")
        undo("edit_redo")
        back = host.find_node(self.doc, self.pose_id)
        r["redone"] = back is not None and len(back.shapes()) == 35
        self.out["pose"]["undo"] = r
        # Drag the right wrist as the shape tool would move it; the pose layer is active.
        self.doc.setActiveNode(back)
        wrist = [s for s in back.shapes() if s.name() == "P00_J04"][0]
        p = wrist.position()
        wrist.setPosition(QPointF(p.x() + 9.0, p.y() - 7.0))  # 72 dpi: points are pixels
        self.pose_t0 = time.monotonic()
        return True

    def controls_and_regions(self):
        """Control types offered per model, a Reference layer's unit, Add region."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.geometry import Rect

        d, c = self.docker, self.docker.controller
        combo = d.control_type
        items = combo.model()

        def state():
            return {
                combo.itemText(i): [items.item(i).isEnabled(), items.item(i).toolTip()]
                for i in range(combo.count())
            }

        d.model.setCurrentText("tiny-sd1")
        r = {"sd1": state()}
        d.model.setCurrentText("tiny-sdxl")
        r["sdxl"] = state()
        combo.setCurrentText("Colour")  # greyed out, but a script can still pick it
        d._mark_active()
        r["refused"] = d.message.text()
        combo.setCurrentText("Reference")
        r["reference_defaults"] = [
            d.control_weight.value(),
            d.control_start.value(),
            d.control_end.value(),
        ]
        d.model.setCurrentText("tiny-sd1")
        # A reference picture in a corner: the whole of it is the unit's image.
        pic = np.zeros((16, 20, 4), np.uint8)
        pic[..., 0], pic[..., 3] = 210, 255
        layer, _ = host.add_result_layer(
            self.doc, self.doc.rootNode(), "reference", pic, Rect(70, 4, 20, 16), None
        )
        host.refresh(self.doc)
        for node_id in list(c.marks(self.doc)):
            c.set_mark(node_id, None, self.doc)
        self.doc.setActiveNode(layer)  # takes effect once the event loop has run
        self.out["controls_regions"] = r
        return True

    def reference_and_region(self):
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.regions import plan_generate

        d, c = self.docker, self.docker.controller
        r = self.out["controls_regions"]
        if self.doc.activeNode() is None or self.doc.activeNode().name() != "reference":
            return False
        d._mark_active()
        marks = c.marks(self.doc)
        units = c._control_units(self.doc, plan_generate(host.canvas_rect(self.doc), None))
        r["reference_mark"] = [[m.type, m.weight, m.start, m.end] for m in marks.values()]
        r["reference_unit"] = [
            [u.type, list(u.image.shape), [int(v) for v in u.image[0, 0]]] for u in units
        ]
        # The list's tick switches the layer off for jobs (kept marked) and on again.
        from PyQt5.QtCore import Qt

        plan = plan_generate(host.canvas_rect(self.doc), None)
        d._fill_controls()
        item = d.control_list.item(0)
        ticked = [item.checkState() == Qt.Checked]
        item.setCheckState(Qt.Unchecked)
        off = ([m.enabled for m in c.marks(self.doc).values()], c._control_units(self.doc, plan))
        d._fill_controls()  # the refresh shows the stored switch
        ticked.append(d.control_list.item(0).checkState() == Qt.Checked)
        d.control_list.item(0).setCheckState(Qt.Checked)  # live mode below uses it
        r["switch"] = {
            "ticked": ticked,
            "off_marks": off[0],
            "off_units": len(off[1]),
            "on_units": [u.type for u in c._control_units(self.doc, plan)],
        }
        # Add region: a transparent layer above the active one, named from the prompt field.
        d.region_prompt.setText("a red barn")
        d.add_region_button.click()
        new = [n for n in self.doc.rootNode().childNodes() if n.name() == "region: a red barn"][0]
        host.refresh(self.doc)
        data = host.read_layers(self.doc, [host.node_id(new)], host.canvas_rect(self.doc))
        siblings = [n.name() for n in new.parentNode().childNodes()]
        r["region"] = {
            "name": new.name(),
            "type": new.type(),
            "transparent": int(data[host.node_id(new)][..., 3].max()) == 0,
            "above_reference": siblings.index(new.name()) == siblings.index("reference") + 1,
            "prompt_cleared": d.region_prompt.text() == "",
            "message": d.message.text(),
            "region_prompts": [x.prompt for x in ctl_regions(self.doc)],
        }
        self.out["controls_regions"] = r
        return True

    # -- Live ------------------------------------------------------------------------------
    def live_on(self):
        d = self.docker
        Krita.instance().action("deselect").trigger()
        self.doc.waitForDone()
        if self.doc.selection() is not None and self.doc.selection().width() > 0:
            return False
        d.steps.setValue(2)
        self.live = {"strength_default": d.live_panel.strength.value()}
        self.out["live_sampler_panel"] = d.sampler.currentText()
        self.remember_active()
        d.live_panel.toggle.click()
        self.live["checked"] = d.live_panel.toggle.isChecked()
        return True

    def _preview_layers(self):
        return [n for n in self.doc.rootNode().childNodes() if n.name() == "Live preview"]

    def _preview_matches_result(self):
        """The preview layer holds the backend's pixels, exactly."""
        from dreamwire_krita.logic import pixels

        lm = self.docker.controller.live
        rgba, t = lm.result[0], lm.result[1]
        node = self._preview_layers()[0]
        got = pixels.bgra_to_rgba(node.pixelData(t.x, t.y, t.w, t.h), t.w, t.h)
        return bool(np.array_equal(got, rgba)) and int(rgba[..., :3].std()) > 0

    def live_first(self):
        c = self.docker.controller
        if c.status.level == "error":
            raise RuntimeError(c.status.message)
        if c.live.shown < 1:
            return False
        job = c.last_job
        top = [n.name() for n in self.doc.rootNode().childNodes()][-1]
        self.live.update(
            job=[job.strength, job.priority, job.steps, job.sampler, job.batch, job.seed],
            seed=c.live.seed,
            units=sorted(u.type for u in job.controls),
            top=top,
            preview_layers=len(self._preview_layers()),
            exact=self._preview_matches_result(),
            preview_id=c.live.preview_id,
            sent=c.live.state.sent,
        )
        # Nothing changes: no new job (the preview layer itself is not an input).
        self.quiet_until = time.monotonic() + 1.5
        self.jobs_before = c.last_job.job_id
        return True

    def live_second(self):
        c = self.docker.controller
        if time.monotonic() < self.quiet_until:
            return False
        if "quiet" not in self.live:
            self.live["quiet"] = c.last_job.job_id == self.jobs_before and c.live.shown == 1
            # A stroke on the paint layer, through the API.
            paint = [n for n in self.doc.rootNode().childNodes() if n.name() == "paint"][0]
            red = np.zeros((12, 40, 4), np.uint8)
            red[..., 2] = red[..., 3] = 255  # BGRA
            paint.setPixelData(red.tobytes(), 20, 20, 40, 12)
            self.doc.refreshProjection()
            return False
        if c.status.level == "error":
            raise RuntimeError(c.status.message)
        if c.live.shown < 2:
            return False
        # The job read the canvas without the preview layer on it: no feedback.
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic.pixels import flatten_rgb

        host.set_visible(self.doc, c.live.preview_id, False)
        bare = flatten_rgb(host.read_visible(self.doc, host.canvas_rect(self.doc)))
        host.set_visible(self.doc, c.live.preview_id, True)
        host.refresh(self.doc)
        with_preview = flatten_rgb(host.read_visible(self.doc, host.canvas_rect(self.doc)))
        self.live.update(
            read_bare=bool(np.array_equal(c.last_job.init_image, bare)),
            preview_differs=not np.array_equal(bare, with_preview),
            second_job=c.last_job.job_id != self.jobs_before,
            same_seed=c.last_job.seed == self.live["seed"],
            same_layer=c.live.preview_id == self.live["preview_id"],
            preview_layers_after=len(self._preview_layers()),
            exact_after=self._preview_matches_result(),
        )
        return True

    def live_apply_off(self):
        d = self.docker
        self.remember_active()
        preview = self._preview_layers()[0]
        d.live_panel.apply_button.click()
        names = [n.name() for n in self.doc.rootNode().childNodes()]
        applied = [n for n in self.doc.rootNode().childNodes() if " · DW live " in n.name()]
        rgba, t = d.controller.live.result[0], d.controller.live.result[1]
        from dreamwire_krita.logic import pixels

        got = pixels.bgra_to_rgba(applied[0].pixelData(t.x, t.y, t.w, t.h), t.w, t.h)
        self.live.update(
            applied=[a.name() for a in applied],
            applied_below=names.index(applied[0].name()) == names.index(preview.name()) - 1,
            applied_exact=bool(np.array_equal(got, rgba)),
        )
        d.live_panel.toggle.click()
        self.live["off_layers"] = len(self._preview_layers())
        self.live["off_checked"] = d.live_panel.toggle.isChecked()
        self.out["live"] = self.live
        return True

    def actions(self):
        """The plugin's Krita actions (what a shortcut triggers) drive the docker."""
        from dreamwire_krita.logic.actions import ACTIONS

        d, k = self.docker, Krita.instance()
        acts = {a.id: k.action(a.id) for a in ACTIONS}
        r = {"found": sorted(i for i, a in acts.items() if a is not None)}
        acts["dreamwire_toggle_live"].trigger()
        r["live_on"] = [d.live_panel.toggle.isChecked(), d.workspace.value, d.controller.live.on]
        acts["dreamwire_toggle_live"].trigger()
        r["live_off"] = [d.live_panel.toggle.isChecked(), d.controller.live.on]
        d.set_workspace(type(d.workspace).GENERATE)
        d.steps.setValue(40)  # long enough to still be running when cancelled
        before = d.controller.last_job
        d.fixed_seed.setChecked(False)  # a new random seed per queued job
        acts["dreamwire_generate"].trigger()
        r["generated"] = d.controller.last_job is not before and d.controller.busy
        first = d.controller.last_job
        acts["dreamwire_generate"].trigger()  # a second press queues a second job
        r["queue"] = [
            d.queue_button.text(),
            len(d.controller.queue()),
            first.seed != d.controller.last_job.seed,
        ]
        d.queue_menu.aboutToShow.emit()  # what the menu lists when opened
        r["menu"] = [a.text() for a in d.queue_menu.actions() if a.text()]
        acts["dreamwire_cancel"].trigger()
        self.out["actions"] = r
        return True

    def actions_cancelled(self):
        if self.docker.controller.busy:
            return False
        self.out["actions"]["cancelled"] = self.docker.message.text()
        return True

    def manual_shots(self):
        """The manual's pictures (scripts/krita_screenshots.py): the docker floated to a
        readable size in each workspace, then docked again in the maximised window, with the
        document and the results this run made."""
        from dreamwire_krita.logic import workspaces

        shots = self.cfg.get("manual")
        if not shots:
            return True
        app = QApplication.instance()
        d = self.docker
        win = Krita.instance().activeWindow().qwindow()
        win.showMaximized()
        screen = app.primaryScreen().availableGeometry()
        d.setFloating(True)
        d.resize(460, min(980, screen.height() - 40))
        taken = []
        for ws in workspaces.Workspace:
            d.set_workspace(ws)
            app.processEvents()
            name = f"docker-{ws.value}.png"
            d.grab().save(os.path.join(shots, name))
            taken.append(name)
        d.setFloating(False)
        d.set_workspace(workspaces.Workspace.GENERATE)
        app.processEvents()
        win.grab().save(os.path.join(shots, "krita.png"))
        self.out["manual_shots"] = taken + ["krita.png"]
        return True

    def tiling(self):
        """Wrap-around mode makes jobs seamless over the whole tile; masked content is
        kept per workspace."""
        from dreamwire_krita.logic.workspaces import Workspace
        from krita import Selection

        d, k = self.docker, Krita.instance()
        wrap = k.action("wrap_around_mode")
        r = {"checkable": wrap is not None and wrap.isCheckable()}
        d._show_tiling()  # what the button's timer does
        r["off"] = [d.tiling.isChecked(), d.tiling.isEnabled()]
        wrap.setChecked(True)
        d._show_tiling()
        r["on"] = [d.tiling.isChecked(), d.tiling.isEnabled()]
        d.set_workspace(Workspace.LIVE)
        d.inpaint_fill.setCurrentText("fill")
        d.set_workspace(Workspace.GENERATE)
        r["masked"] = [d.inpaint_fill.currentText()]
        d.set_workspace(Workspace.LIVE)
        r["masked"].append(d.inpaint_fill.currentText())
        d.set_workspace(Workspace.GENERATE)
        r["masked_setting"] = k.readSetting("dreamwire", "masked_content", "")
        sel = Selection()
        sel.select(0, 10, 20, 20, 255)  # on the tile's left edge
        self.doc.setSelection(sel)
        d.strength.setValue(1.0)
        d.generate_button.click()
        job = d.controller.last_job
        r["job"] = [str(job.mode.value), job.seamless, job.width, job.height, job.inpaint_fill]
        r["params_seamless"] = d.params().seamless  # the artist's own toggle: still off
        d.controller.cancel()
        wrap.setChecked(False)
        d._show_tiling()
        r["after"] = [d.tiling.isChecked(), d.tiling.isEnabled()]
        self.doc.setSelection(Selection())
        self.out["tiling"] = r
        return True

    def tiling_cancelled(self):
        return not self.docker.controller.busy

    def depth_library(self):
        """The depth library's window: two hands placed into a new depth group, nearer
        wins where they overlap, the second undone in one step; a broken file is named."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic import depth_library as dl
        from dreamwire_krita.logic.controls import ControlMark
        from dreamwire_krita.logic.regions import plan_generate

        d, c, doc = self.docker, self.docker.controller, self.doc
        broken = dl.user_folder(host.resource_dir()) / "props" / "broken.png"
        broken.parent.mkdir(parents=True, exist_ok=True)
        broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        active = doc.activeNode().name()
        canvas = host.canvas_rect(doc)
        d.depth_library_button.click()
        dlg = d.depth_library
        r = {"shown": dlg.isVisible(), "problems": dlg.problems.text()}
        r["categories"] = [dlg.category.itemText(i) for i in range(dlg.category.count())]
        want = np.zeros((canvas.h, canvas.w, 4), np.uint8)
        holders, placed = [], []
        for key, x, flip in (("hands/open_right", 36, False), ("hands/fist_right", 52, True)):
            r.setdefault("selected", []).append(dlg.select(key))
            dlg.x.setValue(x)
            dlg.y.setValue(32)
            dlg.scale.setValue(0.2)
            dlg.flip.setChecked(flip)
            p = dl.place(dlg.maps[key], dlg.placement(), canvas)
            over = np.zeros_like(want)
            over[p.rect.y : p.rect.bottom, p.rect.x : p.rect.right] = p.rgba
            want = dl.composite_max(want, over)
            placed.append(over[..., 3] > 0)
            holders.append(dlg.place_button.click() or dlg.recent)
        group = host.find_node(doc, holders[0])
        got = host.read_layers(doc, [holders[0]], canvas)[holders[0]]
        r["group"] = [group.name(), group.type(), holders[0] == holders[1]]
        r["children"] = [[n.name(), n.blendingMode()] for n in group.childNodes()]
        r["mark"] = c.marks(doc)[holders[0]].type
        r["exact"] = bool(np.array_equal(got, want))
        r["max_diff"] = int(np.abs(got.astype(int) - want).max())
        both = placed[0] & placed[1]
        r["overlap"] = int(both.sum())
        # Where they overlap, the nearer of the two (the fist's knuckles beat the palm).
        r["changed_where_placed"] = bool(((got[..., 3] > 0) == (placed[0] | placed[1])).all())
        units = c._control_units(doc, plan_generate(canvas, None))
        r["units"] = sorted(u.type for u in units)
        r["message"] = dlg.status.text()
        Krita.instance().action("edit_undo").trigger()
        doc.waitForDone()
        QApplication.instance().processEvents()
        r["after_undo"] = [n.name() for n in group.childNodes()]
        r["active"] = [active, doc.activeNode().name()]
        if self.cfg.get("manual"):  # the manual's picture of the window
            dlg.grab().save(os.path.join(self.cfg["manual"], "depth-library.png"))
        dlg.close()
        c.set_mark(holders[0], None, doc)
        group.remove()
        broken.unlink()
        # Next: an opaque depth paint layer (as "Make from active layer" makes), active.
        flat = np.zeros((canvas.h, canvas.w, 4), np.uint8)
        flat[...] = (90, 90, 90, 255)
        layer, _ = host.add_result_layer(doc, doc.rootNode(), "depth paint", flat, canvas, None)
        c.set_mark(host.node_id(layer), ControlMark("depth"), doc)
        host.refresh(doc)
        doc.setActiveNode(layer)  # takes effect once the event loop has run
        self.out["depth_library"] = r
        return True

    def depth_merge(self):
        """Placing on a depth paint layer merges a Lighten layer down: the layer keeps its
        name and its mark (on its new id), two undo steps take it back."""
        from dreamwire_krita import krita_host as host
        from dreamwire_krita.logic import depth_library as dl

        d, c, doc = self.docker, self.docker.controller, self.doc
        node = doc.activeNode()
        if node is None or node.name() != "depth paint":
            return False
        old, canvas = host.node_id(node), host.canvas_rect(doc)
        before = host.read_layers(doc, [old], canvas)[old]
        d.depth_library_button.click()
        dlg = d.depth_library
        dlg.select("hands/pointing_right")
        dlg.x.setValue(48)
        dlg.y.setValue(32)
        dlg.scale.setValue(0.2)
        dlg.flip.setChecked(False)
        p = dl.place(dlg.maps["hands/pointing_right"], dlg.placement(), canvas)
        over = np.zeros_like(before)
        over[p.rect.y : p.rect.bottom, p.rect.x : p.rect.right] = p.rgba
        want = dl.composite_max(before, over)
        dlg.place_button.click()
        merged = [n for n in doc.rootNode().childNodes() if n.name() == "depth paint"][-1]
        new = host.node_id(merged)
        got = host.read_layers(doc, [new], canvas)[new]
        names = [n.name() for n in doc.rootNode().childNodes()]
        r = {
            "message": dlg.status.text(),
            "merged": [merged.name(), new != old, getattr(c.marks(doc).get(new), "type", None)],
            "exact": bool(np.array_equal(got, want)),
            "changed": bool((want != before).any()),
            "left_over": [n for n in names if n.startswith("Depth:")],
        }
        undo = Krita.instance().action("edit_undo")
        seen = []
        for _ in range(2):
            undo.trigger()
            doc.waitForDone()
            QApplication.instance().processEvents()
            seen.append([n.name() for n in doc.rootNode().childNodes()][-2:])
        back = host.find_node(doc, old)
        r["undo"] = seen
        r["restored"] = back is not None and bool(
            np.array_equal(host.read_layers(doc, [old], canvas)[old], before)
        )
        dlg.close()
        for node_id in (old, new):
            c.set_mark(node_id, None, doc)
        for n in doc.rootNode().childNodes():
            if n.name() in ("depth paint", "Depth: pointing right"):
                n.remove()
        host.refresh(doc)
        self.out["depth_library"]["merge"] = r
        return True

    def finish(self):
        self.out["settings_params"] = Krita.instance().readSetting("dreamwire", "params", "")
        dwtest.write(self.out)
        for doc in Krita.instance().documents():
            doc.setModified(False)
        # Quit as the File menu would; if anything hangs, the result is written already.
        QTimer.singleShot(20000, lambda: os._exit(0))
        QApplication.instance().closeAllWindows()
        Krita.instance().action("file_quit").trigger()
        return True


def undo_steps():
    """The active document's undo history as Krita's History docker lists it: the step
    names and how many (the first row is the document's unchanged state)."""
    from PyQt5.QtWidgets import QListView

    for dock in Krita.instance().dockers():
        if dock.objectName() == "History":
            views = dock.findChildren(QListView)
            model = views[0].model() if views else None
            if model is not None:
                rows = [model.data(model.index(i, 0)) for i in range(model.rowCount())]
                return [rows[-1], len(rows)]
    return None


def ctl_regions(doc):
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.logic import prompt_regions

    return prompt_regions.region_layers(host.layer_infos(doc))


class DwTestExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.driver = None

    def setup(self):
        Krita.instance().notifier().windowCreated.connect(self.on_window)

    def on_window(self):
        if self.driver is None:
            self.driver = Driver()
            self.driver.start()

    def createActions(self, window):
        pass


Krita.instance().addExtension(DwTestExtension(Krita.instance()))
