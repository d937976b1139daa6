"""The Dreamwire docker: widgets only. Actions live in Controller, decisions in logic/."""

from __future__ import annotations

from krita import DockWidget, Krita
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dreamwire.shared.family_presets import FamilyPresets, Sampling
from dreamwire.shared.family_support import mode_refusal, model_info, refusal
from dreamwire.shared.refine_upscaler import PIXEL_UPSCALERS, upscaler_choices
from dreamwire.shared.xyz_axes import AXES

from . import krita_host as host
from . import train_lora_dialog
from .controller import Controller
from .history_panel import HistoryPanel
from .live_panel import LivePanel
from .logic import actions, live, lora_tags, styles, workspaces
from .logic import controls as ctl
from .logic import generate_kind as gk
from .logic import queue as jobqueue
from .logic import settings as settings_mod
from .logic import upscale as upscaling
from .logic.library import library, names
from .logic.masked_content import MaskedContent
from .logic.params import MASKED_CONTENT, Params
from .logic.regions import PlanError
from .logic.session import SessionError
from .logic.style_store import StyleStore, styles_folder
from .pickers import LoraPicker, ModelPicker, StyleBar
from .settings_dialog import SettingsDialog
from .widgets import Fold, to_qimage

POLL_MS = 50
SEED_MAX = 2**31 - 1


class DreamwireDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("Dreamwire")
        self.controller = Controller(ui=self)
        self.controller.results.previews_on = True  # results wait in the history as previews
        self._welcome_seen = None
        self.presets = FamilyPresets()
        self._follow_family = True  # off while set_params fills the widgets from one record
        self.workspace = workspaces.from_setting(self.controller.settings.workspace)
        self._build()
        self._load_params()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.controller.tick)
        self.timer.start(POLL_MS)
        self.controller.connect()

    # -- layout ---------------------------------------------------------------------
    def _build(self) -> None:
        """Workspaces as Krita AI Diffusion lays them out: a selector on top, the prompt and
        model shared, one page per task (rare settings folded), and status, progress and
        Cancel always in sight below a scroll area that takes up whatever the screen lacks."""
        root = QWidget(self)
        lay = QVBoxLayout(root)
        lay.setContentsMargins(2, 2, 2, 2)

        row = QHBoxLayout()
        self.workspace_buttons = QButtonGroup(self)
        for ws in workspaces.Workspace:
            b = QToolButton()
            b.setText(ws.label)
            b.setToolTip(ws.tip)
            b.setCheckable(True)
            b.setAutoRaise(True)
            self.workspace_buttons.addButton(b)
            b.clicked.connect(lambda _on, ws=ws: self.set_workspace(ws))
            row.addWidget(b)
        row.addStretch(1)
        self.state_label = QLabel("Disconnected")
        self.connect_button = QToolButton()
        self.connect_button.setText("Connect")
        self.connect_button.clicked.connect(self.controller.connect)
        self.settings_button = QToolButton()
        self.settings_button.setText("Settings…")
        self.settings_button.clicked.connect(self.edit_settings)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("Refresh")
        self.refresh_button.setToolTip("List the backend's models again (new or merged files)")
        self.refresh_button.clicked.connect(self.controller.refresh_models)
        row.addWidget(self.state_label)
        row.addWidget(self.connect_button)
        row.addWidget(self.settings_button)
        row.addWidget(self.refresh_button)
        lay.addLayout(row)

        body = QWidget()
        self.body = body
        blay = QVBoxLayout(body)
        blay.setContentsMargins(0, 0, 0, 0)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Prompt")
        self.prompt.setMaximumHeight(64)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("Negative prompt")
        self.negative.setMaximumHeight(40)
        blay.addWidget(self.prompt)
        blay.addWidget(self.negative)
        self._build_pickers(blay)
        self.model.currentTextChanged.connect(lambda _text: self._family_changed())

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_generate())
        self.pages.addWidget(self._build_upscale())
        self.live_panel = LivePanel(self.controller.live, self.params)
        self.pages.addWidget(self.live_panel)
        blay.addWidget(self.pages)
        blay.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(body)
        lay.addWidget(self.scroll, 1)

        # Always visible, whatever the workspace or the scroll position.
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setVisible(False)
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.queue_button = QToolButton()
        self.queue_button.setText(jobqueue.label([]))
        self.queue_button.setToolTip("The jobs sent and waiting: pick one to cancel it")
        self.queue_button.setPopupMode(QToolButton.InstantPopup)
        self.queue_menu = QMenu(self.queue_button)
        self.queue_menu.aboutToShow.connect(self._fill_queue_menu)
        self.queue_button.setMenu(self.queue_menu)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel every job in the queue")
        self.cancel_button.clicked.connect(lambda: self.controller.cancel())
        row.addWidget(self.progress, 1)
        row.addWidget(self.queue_button)
        row.addWidget(self.cancel_button)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay.addWidget(self.preview)
        lay.addLayout(row)
        lay.addWidget(self.message)
        self.setWidget(root)
        self.set_workspace(self.workspace)

    def _build_generate(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        row = QHBoxLayout()
        row.addWidget(QLabel("Strength"))
        row.addWidget(self.strength, 1)
        self.select_button = QPushButton("Select by clicking")
        self.select_button.setToolTip(
            "Paint small dots on a layer named 'clicks' over the object (red ones where "
            "it is not) and press: SAM 2 selects the object. A selection, if any, is the "
            "box it looks in."
        )
        self.select_button.clicked.connect(
            lambda: self.controller.select_by_clicking(self.params())
        )
        row.addWidget(self.select_button)
        self.subject_button = QPushButton("Select subject")
        self.subject_button.setToolTip(
            "Select the canvas's subject with a background-removal model (rembg's "
            "u2net.onnx, isnet-general-use.onnx or birefnet-general.onnx on the backend)."
        )
        self.subject_button.clicked.connect(lambda: self.controller.select_subject(self.params()))
        row.addWidget(self.subject_button)
        lay.addLayout(row)

        row = QHBoxLayout()
        # One button: the selection and the strength say whether it generates, refines or
        # inpaints (logic/generate_kind.py); its text follows them.
        self.generate_button = QPushButton("Generate")
        self.edit_button = QPushButton("Edit")
        self._edit_tip = (
            "Change the current layer (or its selected part) as the prompt instructs; the "
            "result comes in as a new layer"
        )
        self.generate_button.clicked.connect(
            lambda: self.controller.generate_by_selection(self.params())
        )
        self.strength.valueChanged.connect(lambda _v: self._show_kind())
        self.kind_timer = QTimer(self)  # the selection changes without telling the docker
        self.kind_timer.timeout.connect(self._show_kind)
        self.kind_timer.start(400)
        self.edit_button.clicked.connect(lambda: self.controller.edit(self.params()))
        self.layers_button = QPushButton("Layers")
        self._layers_tip = (
            "Split the current layer (or its selected part) into RGBA layers; they come in "
            "as a group, bottom layer first (the prompt describes the picture)"
        )
        self.layers_button.clicked.connect(lambda: self.controller.layers(self.params()))
        row.addWidget(self.generate_button, 2)
        for b in (self.edit_button, self.layers_button):
            row.addWidget(b, 1)
        row.addWidget(self._build_tiling())
        lay.addLayout(row)

        # The X/Y/Z plot varies sampling settings: it folds away with them, so the page's
        # unfolded height stays within a 1080p screen beside Layers.
        sampling = QWidget()
        slay = QVBoxLayout(sampling)
        slay.setContentsMargins(0, 0, 0, 0)
        slay.addWidget(self._build_sampling())
        slay.addWidget(self._build_xyz())
        lay.addWidget(Fold("Sampling", sampling))
        lay.addWidget(Fold("Control layers", self._build_controls()))
        lay.addWidget(Fold("Regions", self._build_regions()))

        self.history_panel = HistoryPanel(
            self.controller.results,
            lambda i: self.set_params(self.controller.results.copy_params(i, self.params())),
        )
        lay.addWidget(Fold("History", self.history_panel, folded=False))
        return page

    def _build_tiling(self) -> QWidget:
        """Seamless tiling: the artist's toggle, on by itself while Krita's wrap-around mode
        is (logic/tiling.py); the button's timer follows the mode."""
        self.tiling = QCheckBox("Tile")
        self._tiling_tip = (
            "Tile seamlessly: the canvas repeats without seams; every job reads and "
            "generates the whole canvas. On by itself while View > Wrap Around Mode is on"
        )
        self.tiling.setToolTip(self._tiling_tip)
        self._tiling_own = False  # the artist's choice, whatever wrap-around forces
        self.tiling.toggled.connect(
            lambda on: self.tiling.isEnabled() and setattr(self, "_tiling_own", on)
        )
        self.kind_timer.timeout.connect(self._show_tiling)
        return self.tiling

    def _show_tiling(self) -> None:
        wrap = host.wrap_around()
        if wrap == self.tiling.isEnabled():  # the mode changed since the last look
            self.tiling.setEnabled(not wrap)
            self.tiling.setChecked(True if wrap else self._tiling_own)
            self.tiling.setToolTip(
                "On: Krita's wrap-around mode is on (View > Wrap Around Mode)"
                if wrap
                else self._tiling_tip
            )

    def _masked_changed(self, fill: str) -> None:
        """The masked content choice belongs to the workspace it was made in."""
        mc = getattr(self, "masked", None)
        if mc is not None and mc.set(self.workspace, fill):
            text = mc.to_json()
            if text != self.controller.settings.masked_content:
                self.controller.settings.masked_content = text
                Krita.instance().writeSetting(settings_mod.GROUP, "masked_content", text)

    def _show_masked(self) -> None:
        mc = getattr(self, "masked", None)  # None while the docker is being built
        if mc is not None:
            self.inpaint_fill.setCurrentText(mc.get(self.workspace))

    def _build_sampling(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.sampler = QComboBox()
        self.sampler.setEditable(True)
        self.steps = QSpinBox()
        self.steps.setRange(1, 150)
        self.cfg = QDoubleSpinBox()
        self.cfg.setRange(0.0, 30.0)
        self.cfg.setSingleStep(0.5)
        self.distilled_cfg = QDoubleSpinBox()
        self.distilled_cfg.setRange(0.0, 30.0)
        self.distilled_cfg.setSingleStep(0.5)
        self.distilled_cfg.setToolTip(
            "Forge's Distilled CFG Scale: the guidance a guidance-distilled model (Flux.1 "
            "dev) takes as an input; shown for the families that have it"
        )
        self.distilled_label = QLabel("Distilled CFG")
        self.cfg_rescale = QDoubleSpinBox()
        self.cfg_rescale.setRange(0.0, 1.0)
        self.cfg_rescale.setSingleStep(0.05)
        self.cfg_rescale.setToolTip(
            "A1111's CFG Rescale φ: pulls the guided prediction back to the prompt's own "
            "contrast; 0.7 for v-prediction models (NoobAI-XL v-pred); 0: off"
        )
        self.cfg_rescale_label = QLabel("CFG Rescale")
        self.slg_scale = QDoubleSpinBox()
        self.slg_scale.setRange(0.0, 10.0)
        self.slg_scale.setSingleStep(0.5)
        self.slg_scale.setToolTip(
            "SD3.5's skip-layer guidance scale (about 3 for Medium; 0: off); plain Generate "
            "only, left out of two-pass, Refine and Inpaint jobs"
        )
        self.slg_label = QLabel("Skip-layer guidance")
        self.seed = QSpinBox()
        self.seed.setRange(-1, SEED_MAX)
        self.seed.setSpecialValueText("random")
        self.fixed_seed = QCheckBox("Fixed")
        self.fixed_seed.setToolTip(
            "On: every job uses this seed. Off: every queued job gets a new random seed"
        )
        self.dice = QToolButton()
        self.dice.setText("🎲")
        self.dice.setToolTip("A new random seed, kept fixed")
        self.dice.clicked.connect(lambda: self.seed.setValue(live.new_seed()))
        # A seed typed in is a seed meant to be used; "random" is not fixed.
        self.seed.valueChanged.connect(lambda v: self.fixed_seed.setChecked(v >= 0))
        self.fixed_seed.toggled.connect(self._fixed_toggled)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.fixed_seed)
        seed_row.addWidget(self.dice)
        self.inpaint_fill = QComboBox()
        self.inpaint_fill.addItems(list(MASKED_CONTENT))
        self.inpaint_fill.currentTextChanged.connect(self._masked_changed)
        self.inpaint_fill.setToolTip(
            "What Inpaint starts from under the selection (A1111's Masked content): "
            "fill = blurred surrounding colours, original = the canvas, "
            "latent noise / latent nothing = noise or zeros in latent space"
        )
        self.batch = QSpinBox()
        self.batch.setRange(1, 16)
        self.two_pass = QCheckBox("Large images in two passes")
        self.two_pass.setToolTip(
            "Generate areas larger than the model's native size (SD1 512, SD2 768, SDXL 1024) "
            "at that size first, then upscale and refine them to the full size (Hires.fix), "
            "instead of sampling the full size at once and getting repeated compositions"
        )
        for label, w in (
            ("Sampler", self.sampler),
            ("Steps", self.steps),
            ("CFG", self.cfg),
            (self.distilled_label, self.distilled_cfg),
            (self.cfg_rescale_label, self.cfg_rescale),
            (self.slg_label, self.slg_scale),
            ("Seed", seed_row),
            ("Masked content", self.inpaint_fill),
            ("Batch", self.batch),
        ):
            form.addRow(label, w)
        form.addRow("", self.two_pass)
        self.attention_maps = QCheckBox("Attention maps (DAAM)")
        self.attention_maps.setToolTip(
            "With each image, a group of heat-map overlays showing where each word of the "
            "prompt acted (SD models)"
        )
        form.addRow("", self.attention_maps)
        return box

    # -- workspaces --------------------------------------------------------------------
    def set_workspace(self, ws: workspaces.Workspace) -> None:
        """Show `ws`'s page (and check its button); leaving Live switches Live off."""
        old, self.workspace = self.workspace, ws
        if not workspaces.live_stays_on(old, ws) and self.live_panel.toggle.isChecked():
            self.live_panel.toggle.click()
        index = list(workspaces.Workspace).index(ws)
        # A stack is as tall as its tallest page; only the shown page may claim space.
        for i in range(self.pages.count()):
            page = self.pages.widget(i)
            policy = QSizePolicy.Preferred if i == index else QSizePolicy.Ignored
            page.setSizePolicy(policy, policy)
        self.pages.setCurrentIndex(index)
        self.pages.adjustSize()
        self.workspace_buttons.buttons()[index].setChecked(True)
        self._show_masked()
        if ws.value != self.controller.settings.workspace:
            self.controller.settings.workspace = ws.value
            Krita.instance().writeSetting(settings_mod.GROUP, "workspace", ws.value)

    def _build_upscale(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.upscaler = QComboBox()
        self.upscaler.setEditable(True)
        self.upscaler.addItems(list(PIXEL_UPSCALERS))
        self._upscaler_chosen = False  # picked by the artist (activated: never by code)
        self.upscaler.activated.connect(lambda _i: setattr(self, "_upscaler_chosen", True))
        self.upscale_factor = QDoubleSpinBox()
        self.upscale_factor.setRange(1.0, 8.0)
        self.upscale_factor.setSingleStep(0.5)
        self.upscale_factor.setValue(upscaling.UpscaleChoice.factor)
        self.upscale_refine = QCheckBox("Refine (tiles, tile ControlNet)")
        self.upscale_refine.setChecked(True)
        self._refine_tip = "Refine the upscaled canvas tile by tile with the prompt"
        self.upscale_refine.setToolTip(self._refine_tip)
        self.upscale_strength = QDoubleSpinBox()
        self.upscale_strength.setRange(0.0, 1.0)
        self.upscale_strength.setSingleStep(0.05)
        self.upscale_strength.setValue(upscaling.REFINE_STRENGTH)
        self.upscale_refine.toggled.connect(self.upscale_strength.setEnabled)
        form.addRow("Upscaler", self.upscaler)
        form.addRow("Factor", self.upscale_factor)
        form.addRow("", self.upscale_refine)
        form.addRow("Refine strength", self.upscale_strength)
        self.upscale_button = QPushButton("Upscale canvas")
        self.upscale_button.setToolTip(
            "Upscale the whole canvas into a new layer; the document is scaled to match"
        )
        self.upscale_button.clicked.connect(
            lambda: self.controller.upscale(self.params(), self.upscale_choice())
        )
        form.addRow(self.upscale_button)
        return box

    def _build_xyz(self) -> QWidget:
        """A1111's X/Y/Z plot: an axis type and its values per row ("" type: unused)."""
        box = QGroupBox("X/Y/Z plot")
        form = QFormLayout(box)
        self.xyz_rows = []
        for name in "XYZ":
            kind = QComboBox()
            kind.addItems(list(AXES))  # "Nothing" first, A1111's default for Y and Z
            values = QLineEdit()
            values.setPlaceholderText('e.g. 1-5, 1-10 (+2), 1-10 [5], a,b,"c, d"')
            row = QHBoxLayout()
            row.addWidget(kind)
            row.addWidget(values, 1)
            form.addRow(f"{name} type / values", row)
            self.xyz_rows.append((kind, values))
        self.xyz_group = QCheckBox("Each cell as a layer in a group")
        form.addRow("", self.xyz_group)
        self.xyz_button = QPushButton("Plot grid")
        self.xyz_button.setToolTip(
            "Generate one cell per combination of the axes' values through the backend's "
            "queue; the labelled grid comes in as a new layer"
        )
        self.xyz_button.clicked.connect(
            lambda: self.controller.xyz.plot(
                self.params(),
                [(k.currentText(), v.text()) for k, v in self.xyz_rows],
                self.xyz_group.isChecked(),
            )
        )
        form.addRow(self.xyz_button)
        return box

    def upscale_choice(self) -> upscaling.UpscaleChoice:
        return upscaling.UpscaleChoice(
            factor=self.upscale_factor.value(),
            upscaler=self.upscaler.currentText().strip() or "Lanczos",
            # Greyed out where the model's family cannot refine: a plain upscale.
            refine=self.upscale_refine.isChecked() and self.upscale_refine.isEnabled(),
            strength=self.upscale_strength.value(),
        )

    def _build_controls(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.control_type = QComboBox()
        self.control_type.addItems(list(ctl.TYPES))
        self.control_weight = QDoubleSpinBox()
        self.control_weight.setRange(0.0, 2.0)
        self.control_weight.setSingleStep(0.05)
        self.control_start = QDoubleSpinBox()
        self.control_start.setRange(0.0, 1.0)
        self.control_end = QDoubleSpinBox()
        self.control_end.setRange(0.0, 1.0)
        self._control_defaults()
        # Each type starts from its own defaults (Reference differs from the ControlNets),
        # as a Krita AI Diffusion control layer does when its mode changes.
        self.control_type.currentIndexChanged.connect(self._control_defaults)
        self.model.currentTextChanged.connect(lambda _text: self._fill_offers())
        form.addRow("Type", self.control_type)
        form.addRow("Weight", self.control_weight)
        form.addRow("Start", self.control_start)
        form.addRow("End", self.control_end)
        lay.addLayout(form)
        row = QHBoxLayout()
        mark = QPushButton("Use active layer")
        mark.clicked.connect(self._mark_active)
        unmark = QPushButton("Stop using it")
        unmark.clicked.connect(lambda: self._mark_active(remove=True))
        row.addWidget(mark)
        row.addWidget(unmark)
        lay.addLayout(row)
        # The backend's annotator makes the chosen type's map of the active layer: a new
        # control layer above it (A1111's "preview annotator result").
        self.make_control_button = QPushButton("Make from active layer")
        self._make_tip = (
            "A new control layer of the chosen type (depth, normals, line art, soft edge, "
            "canny, pose) made from the active layer's pixels by the backend's preprocessor"
        )
        self.make_control_button.clicked.connect(self._make_control)
        self.control_type.currentIndexChanged.connect(lambda _i: self._fill_makeable())
        # The depth library opens in a window of its own, and a draggable pose template
        # goes in at a click: both in the make button's row (this page has no height to spare).
        self.depth_library_button = QPushButton("Depth library…")
        self.depth_library_button.setToolTip("Hand and pose depth maps to place on a depth layer")
        self.depth_library_button.clicked.connect(self._open_depth_library)
        self.add_pose_button = QPushButton("Add pose")
        self.add_pose_button.setToolTip(
            "A standing OpenPose body in the selection (else the canvas) on a new pose "
            "control layer, or one more person on the active pose layer: drag its joints "
            "with the shape tool, the limbs follow"
        )
        self.add_pose_button.clicked.connect(lambda: self.controller.add_pose())
        row = QHBoxLayout()
        row.addWidget(self.make_control_button, 1)
        row.addWidget(self.depth_library_button)
        row.addWidget(self.add_pose_button)
        lay.addLayout(row)
        self._fill_makeable()
        # Each control layer's tick switches it on or off for jobs without unmarking or
        # hiding it (Krita AI Diffusion's per-layer toggle); in the list, not a new row,
        # as the Generate workspace has little height to spare.
        self.control_list = QListWidget()
        self.control_list.setMaximumHeight(80)
        self.control_list.setToolTip("Untick a control layer to leave it out of jobs")
        self.control_list.itemChanged.connect(self._control_switched)
        lay.addWidget(self.control_list)
        return box

    def _build_regions(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.region_prompt = QLineEdit()
        self.region_prompt.setPlaceholderText("Region prompt (or name the layer later)")
        self.add_region_button = QPushButton("Add region")
        self.add_region_button.setToolTip(
            "A new transparent layer named 'region: <prompt>': paint where the region goes; "
            "its prompt guides the pixels under the paint, the main prompt the rest"
        )
        self.add_region_button.clicked.connect(self._add_region)
        self._region_tip = self.add_region_button.toolTip()
        row.addWidget(self.region_prompt, 1)
        row.addWidget(self.add_region_button)
        return box

    def _add_region(self) -> None:
        if self.controller.add_region(self.region_prompt.text()):
            self.region_prompt.clear()

    def _control_defaults(self, _index: int = 0) -> None:
        d = ctl.defaults(ctl.TYPES[self.control_type.currentText()])
        self.control_weight.setValue(d.weight)
        self.control_start.setValue(d.start)
        self.control_end.setValue(d.end)

    def _make_control(self) -> None:
        wire = ctl.TYPES[self.control_type.currentText()]
        self.controller.make_control_layer(wire, self.params())
        self.refresh(self.controller)

    def _open_depth_library(self) -> None:
        from .depth_library_dialog import DepthLibraryDialog

        if getattr(self, "depth_library", None) is None:
            self.depth_library = DepthLibraryDialog(self.controller, self.show_message, self)
        self.depth_library.reload()
        self.depth_library.show()
        self.depth_library.raise_()

    def _fill_makeable(self) -> None:
        """The make button works for the types the backend has an annotator for."""
        label = self.control_type.currentText()
        can = label in self.controller.control_types_to_make()
        self.make_control_button.setEnabled(can)
        self.make_control_button.setToolTip(
            self._make_tip if can else f"The backend lists no preprocessor that makes a {label} map"
        )

    def _fill_offers(self) -> None:
        """Grey out the control types the backend cannot run for the chosen model; the
        tooltip says which file is missing."""
        items = self.control_type.model()
        for i, offer in enumerate(self.controller.control_offers(self.model.currentText())):
            item = items.item(i)
            item.setEnabled(offer.available)
            item.setToolTip(offer.why)

    # -- styles, model and LoRA pickers (pickers.py; logic/styles.py) ---------------------
    def _build_pickers(self, lay: QVBoxLayout) -> None:
        """The style bar (its files in Krita's resource folder), the model picker and the
        LoRA picker's button on one line under the prompt, in every workspace (Upscale's
        refine and Live use the style's prompts too)."""
        self.model_picker = ModelPicker()
        self.model = self.model_picker.combo  # the panel reads its name as before
        self.lora_picker = LoraPicker(self._insert_lora)
        self.model_picker.extra.addWidget(self.lora_picker.button)
        self.model.currentTextChanged.connect(self.lora_picker.set_model)  # its family's LoRAs
        store = StyleStore(styles_folder(host.resource_dir()))
        self.style_bar = StyleBar(
            store,
            self._style_picked,
            self._panel_sampling,
            self.show_message,
            welcome=lambda: self.controller.welcome,
        )
        # Style and model share one line (a style is mostly its checkpoint); what is
        # missing shows below only when there is something to say.
        row = QHBoxLayout()
        row.addWidget(self.style_bar, 2)
        row.addWidget(self.model_picker, 3)
        lay.addLayout(row)
        lay.addWidget(self.model_picker.note)
        lay.addWidget(self.style_bar.problem_label)

    def _fill_pickers(self, welcome) -> None:
        lib = library(welcome)
        self.model_picker.fill(welcome)
        self.lora_picker.fill(lib)
        self.style_bar.show_library(lib)

    def _style_fields(self) -> dict:
        """Params' style fields: the picked style's template (with its LoRAs' tags) and
        negative prompt, merged into each job's prompts (Params.for_job)."""
        style = self.style_bar.current()
        if style is None:
            return {}
        return {
            "style": style.name,
            "style_prompt": style.job_template(),
            "style_negative": style.negative,
        }

    def _style_picked(self, style) -> None:
        """One click: the style's checkpoint (the panel's family follows), sampler, steps
        and CFG; its template, negative prompt and LoRAs go into each job."""
        if style is None:
            self.show_message("No style: the prompts go out as written.", "info")
            return
        lib = library(self.controller.welcome)
        found = styles.resolve(style, lib)
        if found.model:
            self.model_picker.select(found.model)
        self.sampler.setCurrentText(style.sampler_name)
        self.steps.setValue(style.steps)
        self.cfg.setValue(style.cfg)
        if style.distilled_cfg is not None:
            self.distilled_cfg.setValue(style.distilled_cfg)
        gone = styles.missing_loras(style, lib)
        problems = [found.note] if found.note else []
        problems += [f"LoRA {name!r} is not on the backend" for name in gone]
        if found.missing:
            problems.append("the model is unchanged")
        if problems:
            self.show_message(f"Style {style.name!r}: " + "; ".join(problems) + ".", "warning")
        else:
            self.show_message(f"Style {style.name!r}: {found.model}, {style.sampler_name}.", "info")

    def _panel_sampling(self) -> dict:
        info = model_info(self.model.currentText(), self.controller.welcome)
        takes = info.family.defaults.distilled_cfg is not None
        return {
            "model": self.model.currentText(),
            "sampler": self.sampler.currentText(),
            "steps": self.steps.value(),
            "cfg": self.cfg.value(),
            # Kept only for a family that takes one (Flux dev), where the panel shows it.
            "distilled_cfg": self.distilled_cfg.value() if takes else None,
        }

    def _insert_lora(self, name: str, weight: float) -> None:
        if name:
            text = lora_tags.insert_lora(self.prompt.toPlainText(), name, weight)
            self.prompt.setPlainText(text)

    # -- the model's family ------------------------------------------------------------
    def _sampling(self) -> Sampling:
        return Sampling(
            self.steps.value(),
            self.cfg.value(),
            self.sampler.currentText(),
            self.distilled_cfg.value(),
        )

    def _family_changed(self) -> None:
        """A model of another family takes that family's steps, CFG, sampler and Distilled
        CFG, a model with defaults of its own (schnell, Kontext) those where the artist left
        the last model's (the backend's welcome; the rule is shared.family_presets')."""
        model, welcome = self.model.currentText(), self.controller.welcome
        info = model_info(model, welcome)
        if self._follow_family:
            new = self.presets.pick(model, welcome, self._sampling())
            if new is not None:
                self.steps.setValue(new.steps)
                self.cfg.setValue(new.cfg)
                self.sampler.setCurrentText(new.sampler)
                self.distilled_cfg.setValue(new.distilled_cfg)
                self._save_presets()
        self._show_family(info)

    def _show_family(self, info) -> None:
        """Distilled CFG where the family takes it; what it cannot run greyed out, the
        backend's reason as the tooltip (the controller refuses it with the same words)."""
        takes = info.family.defaults.distilled_cfg is not None
        self.distilled_label.setVisible(takes)
        self.distilled_cfg.setVisible(takes)
        # Shown where the family runs them (the job builders send them only there).
        for label, box, feature in (
            (self.cfg_rescale_label, self.cfg_rescale, "cfg_rescale"),
            (self.slg_label, self.slg_scale, "skip_layer_guidance"),
        ):
            label.setVisible(feature in info.supports)
            box.setVisible(feature in info.supports)
        for widget, feature, tip in (
            (self.add_region_button, "regions", self._region_tip),
            (self.upscale_refine, "refine_upscale", self._refine_tip),
        ):
            why = refusal(info, feature)
            widget.setEnabled(why is None)
            widget.setToolTip(why or tip)
        refine = self.upscale_refine
        self.upscale_strength.setEnabled(refine.isEnabled() and refine.isChecked())
        # Edit runs on an edit model only, which the welcome names per model.
        for mode, button, tip in (
            ("edit", self.edit_button, self._edit_tip),
            ("layers", self.layers_button, self._layers_tip),  # layered models only
        ):
            why = mode_refusal(mode, self.model.currentText(), self.controller.welcome)
            button.setEnabled(why is None)
            button.setToolTip(why or tip)

    def _save_presets(self) -> None:
        text = self.presets.to_json()
        if text != self.controller.settings.family_presets:
            self.controller.settings.family_presets = text
            Krita.instance().writeSetting(settings_mod.GROUP, "family_presets", text)

    # -- parameters -----------------------------------------------------------------
    def params(self) -> Params:
        p = Params(
            prompt=self.prompt.toPlainText(),
            negative=self.negative.toPlainText(),
            model=self.model.currentText(),
            **self._style_fields(),
            sampler=self.sampler.currentText(),
            steps=self.steps.value(),
            cfg=self.cfg.value(),
            distilled_cfg=self.distilled_cfg.value(),
            cfg_rescale=self.cfg_rescale.value(),
            slg_scale=self.slg_scale.value(),
            seed=self.seed.value(),
            fixed_seed=self.fixed_seed.isChecked(),
            strength=self.strength.value(),
            batch=self.batch.value(),
            inpaint_fill=self.inpaint_fill.currentText(),
            two_pass=self.two_pass.isChecked(),
            attention_maps=self.attention_maps.isChecked(),
            seamless=self._tiling_own,
        )
        self._save_params(p)
        return p

    def set_params(self, p: Params, family: str | None = None) -> None:
        """The widgets from `p`: its values are for its model's family (`family`, else
        the welcome's or guessed), so nothing switches to another family's defaults."""
        self._follow_family = False
        try:
            self.prompt.setPlainText(p.prompt)
            self.negative.setPlainText(p.negative)
            self.model_picker.select(p.model)
            self.style_bar.select(p.style)
        finally:
            self._follow_family = True
        info = model_info(p.model, self.controller.welcome)
        self.presets.family = family or info.family.key
        self._show_family(info)  # an unchanged model text did not say so
        self.sampler.setCurrentText(p.sampler)
        self.steps.setValue(p.steps)
        self.cfg.setValue(p.cfg)
        self.distilled_cfg.setValue(p.distilled_cfg)
        self.cfg_rescale.setValue(p.cfg_rescale)
        self.slg_scale.setValue(p.slg_scale)
        self.seed.setValue(max(-1, min(SEED_MAX, p.seed)))
        self.fixed_seed.setChecked(p.fixed_seed and p.seed >= 0)
        self.strength.setValue(p.strength)
        self.batch.setValue(p.batch)
        self.inpaint_fill.setCurrentText(p.inpaint_fill)
        self.two_pass.setChecked(p.two_pass)
        self.attention_maps.setChecked(p.attention_maps)
        self._tiling_own = p.seamless
        if self.tiling.isEnabled():
            self.tiling.setChecked(p.seamless)

    def _load_params(self) -> None:
        import json

        try:
            data = json.loads(self.controller.settings.params or "{}")
        except ValueError:
            data = {}
        # The stored values belong to the family recorded with them, not to a guess from
        # the model's name before the backend has said.
        saved = self.controller.settings.family_presets
        self.presets = FamilyPresets.from_json(saved)
        params = Params.from_dict(data if isinstance(data, dict) else {})
        self.set_params(params, self.presets.family if saved else None)
        self.masked = MaskedContent.from_json(
            self.controller.settings.masked_content, params.inpaint_fill
        )
        self._show_masked()

    def _save_params(self, p: Params) -> None:
        import json

        text = json.dumps(p.to_dict())
        if text != self.controller.settings.params:
            self.controller.settings.params = text
            Krita.instance().writeSetting(settings_mod.GROUP, "params", text)

    # -- actions ----------------------------------------------------------------------
    def run_command(self, command: actions.Command) -> None:
        """A Krita action (a shortcut): the same as the docker's buttons."""
        self.set_workspace(actions.live_workspace_for(command, self.workspace))
        if command is actions.Command.GENERATE:
            what = actions.generate_action(self.workspace)
            button = self.upscale_button if what == "upscale" else self.generate_button
            button.click()
        elif command is actions.Command.CANCEL:
            self.controller.cancel()
        elif command is actions.Command.APPLY:
            self.controller.live.apply()
        elif command is actions.Command.TOGGLE_LIVE:
            self.live_panel.toggle.click()

    def edit_settings(self) -> None:
        dlg = SettingsDialog(self.controller.settings, self)
        if dlg.exec_() != QDialog.Accepted:
            return
        try:
            self.controller.save_settings(dlg.value())
        except SessionError as exc:
            self.show_message(str(exc), "error")
            return
        self.controller.connect()

    def _mark_active(self, remove: bool = False) -> None:
        try:
            doc = host.active_document()
            node = doc.activeNode()
            if node is None:
                raise PlanError("Select a layer first.")
            mark = None
            if not remove:
                offer = self.controller.control_offers(self.model.currentText())[
                    self.control_type.currentIndex()
                ]
                if not offer.available:
                    raise PlanError(f"{offer.label}: {offer.why}")
                mark = ctl.ControlMark(
                    type=offer.type,
                    weight=self.control_weight.value(),
                    start=self.control_start.value(),
                    end=self.control_end.value(),
                )
            self.controller.set_mark(host.node_id(node), mark, doc)
        except (PlanError, ValueError) as exc:
            self.show_message(str(exc), "error")
            return  # a refresh would put the last status message back over it
        self.refresh(self.controller)

    def _fixed_toggled(self, on: bool) -> None:
        if on and self.seed.value() < 0:
            self.seed.setValue(live.new_seed())  # fixed to a seed the artist can see

    def _show_kind(self) -> None:
        """The Generate button says what a press will do: Generate, Refine or Inpaint;
        masked content only matters for an inpaint."""
        doc = Krita.instance().activeDocument()
        sel = host.selection_rect(doc) if doc is not None else None
        kind = gk.preview_kind(sel, self.strength.value())
        if self.generate_button.text() != kind.label:
            self.generate_button.setText(kind.label)
            self.generate_button.setToolTip(
                "Strength 100% generates (into the selection: inpaints); below 100% refines "
                "the canvas or the selection"
            )
        self.inpaint_fill.setEnabled(kind is gk.Kind.INPAINT)

    def _fill_queue_menu(self) -> None:
        self.queue_menu.clear()
        shown = self.controller.queue()
        if not shown:
            self.queue_menu.addAction("No jobs in the queue").setEnabled(False)
        for entry in shown:
            act = self.queue_menu.addAction(f"Cancel: {entry.text}")
            act.triggered.connect(lambda _c=False, j=entry.job_id: self.controller.cancel(j))
        if shown:
            self.queue_menu.addSeparator()
            self.queue_menu.addAction("Cancel all").triggered.connect(
                lambda _c=False: self.controller.cancel()
            )
        # Training is a queue job too; here it costs the docker no height (workspaces.py).
        self.queue_menu.addSeparator()
        self.queue_menu.addAction("Train LoRA from these layers…").triggered.connect(
            lambda _c=False: self._train_lora()
        )

    def _train_lora(self) -> None:
        req = train_lora_dialog.ask(self.controller.train.last, self)
        if req is not None:
            self.controller.train.train(req, self.params())

    # -- view updates -------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        colour = {"error": "#d04040", "warning": "#c08020"}.get(level, "")
        self.message.setStyleSheet(f"color: {colour}" if colour else "")
        self.message.setText(text)

    def refresh(self, controller: Controller) -> None:
        st = controller.status
        self.state_label.setText(st.label)
        self.show_message(st.message, st.level)
        busy = controller.busy
        self.cancel_button.setEnabled(busy)
        self.live_panel.refresh()
        view = st.progress if busy else None
        self.progress.setRange(0, view.maximum if view else 1)
        self.progress.setValue(view.value if view else 0)
        self.progress.setFormat(view.text if view else "")
        self.queue_button.setText(jobqueue.label(controller.queue()))
        if st.preview is not None:
            pm = QPixmap.fromImage(to_qimage(st.preview))
            self.preview.setPixmap(pm.scaled(192, 192, Qt.KeepAspectRatio))
            self.preview.setVisible(True)
        elif not busy:
            self.preview.clear()
            self.preview.setVisible(False)
        # A new welcome, or the same one with refreshed model lists (refresh_models).
        if controller.welcome is not None and controller.welcome_version != self._welcome_seen:
            self._welcome_seen = controller.welcome_version
            self._fill_lists(controller.welcome)
            self._fill_offers()
            self._fill_makeable()
            self._family_changed()  # the backend's word on the model's family
        self.history_panel.refresh()
        self._fill_controls()

    def _fill_lists(self, welcome) -> None:
        self._fill_pickers(welcome)
        current = self.sampler.currentText()
        self.sampler.blockSignals(True)
        self.sampler.clear()
        self.sampler.addItems(list(names(welcome.samplers)))
        self.sampler.setCurrentText(current)
        self.sampler.blockSignals(False)
        current = self.upscaler.currentText()
        choices = upscaler_choices(welcome)
        self.upscaler.clear()
        self.upscaler.addItems(choices)
        # The best model the backend lists, until the artist picks one themselves.
        best = upscaling.default_upscaler(choices, self.upscale_factor.value())
        self.upscaler.setCurrentText(current if self._upscaler_chosen else best)

    def _fill_controls(self) -> None:
        doc = Krita.instance().activeDocument()
        # Filling sets each tick: not the artist switching a layer.
        self.control_list.blockSignals(True)
        self.control_list.clear()
        if doc is not None:
            labels = {v: k for k, v in ctl.TYPES.items()}
            for node_id, mark in self.controller.marks(doc).items():
                node = host.find_node(doc, node_id)
                if node is None:
                    continue
                item = QListWidgetItem(
                    f"{node.name()}: {labels[mark.type]} {mark.weight:g} ({mark.start:g}–{mark.end:g})"
                )
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Checked if mark.enabled else Qt.Unchecked)
                item.setData(Qt.UserRole, node_id)
                self.control_list.addItem(item)
        self.control_list.blockSignals(False)

    def _control_switched(self, item: QListWidgetItem) -> None:
        doc = Krita.instance().activeDocument()
        if doc is not None:
            on = item.checkState() == Qt.Checked
            self.controller.switch_control(item.data(Qt.UserRole), on, doc)

    # -- Krita hooks -------------------------------------------------------------------
    def canvasChanged(self, canvas) -> None:
        self._fill_controls()
        doc = Krita.instance().activeDocument()
        if doc is not None and self.controller.results.load(doc):
            self.history_panel.fill()

    def closeEvent(self, event) -> None:
        self.timer.stop()
        self.kind_timer.stop()
        self.controller.shutdown()
        super().closeEvent(event)
