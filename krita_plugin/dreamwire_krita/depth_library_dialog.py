"""The depth library's window: pick a hand or pose map, say where, place it on the depth
control layer. A dialog of its own (not a docker section): the docker's Generate page has
no height to spare. Decisions live in logic/depth_library.py, Krita calls in krita_host."""

from __future__ import annotations

from krita import Krita
from PyQt5.QtCore import QSize, Qt
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from . import krita_host as host
from .logic import depth_library as dl
from .logic.controls import ControlMark, defaults
from .logic.regions import PlanError

THUMB = 72


class DepthLibraryDialog(QDialog):
    def __init__(self, controller, say, parent=None, bundled=dl.BUNDLED, user=None):
        super().__init__(parent)
        self.setWindowTitle("Depth library")
        self.controller = controller
        self.say = say  # the docker's message line
        self.bundled = bundled
        self.user = user if user is not None else dl.user_folder(host.resource_dir())
        self.listing = dl.Listing()
        self.maps: dict[str, object] = {}  # asset key -> its grey array, as loaded
        self.recent: str | None = None  # the depth group placed into last
        lay = QVBoxLayout(self)
        self.category = QComboBox()
        self.category.currentTextChanged.connect(lambda _t: self._fill_assets())
        lay.addWidget(self.category)
        self.assets = QListWidget()
        self.assets.setViewMode(QListView.IconMode)
        self.assets.setIconSize(QSize(THUMB, THUMB))
        self.assets.setResizeMode(QListView.Adjust)
        self.assets.setMinimumSize(4 * (THUMB + 24), 2 * (THUMB + 30))
        self.assets.itemDoubleClicked.connect(lambda _i: self.place())
        lay.addWidget(self.assets)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #c08020")
        lay.addWidget(self.problems)
        form = QFormLayout()
        self.x, self.y = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.x, self.y):
            box.setRange(-100000, 100000)
            box.setDecimals(0)
        row = QHBoxLayout()
        row.addWidget(self.x)
        row.addWidget(self.y)
        form.addRow("Centre (x, y)", row)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(0.01, 50.0)
        self.scale.setSingleStep(0.05)
        self.scale.setDecimals(3)
        self.rotation = QDoubleSpinBox()
        self.rotation.setRange(-360.0, 360.0)
        self.rotation.setSuffix("°")
        self.depth = QDoubleSpinBox()
        self.depth.setRange(0.0, 1.0)
        self.depth.setSingleStep(0.05)
        self.depth.setValue(1.0)
        self.depth.setToolTip("Below 1 the map lies further back (darker)")
        self.flip = QCheckBox("Mirror (a right hand becomes a left one)")
        form.addRow("Scale", self.scale)
        form.addRow("Rotation", self.rotation)
        form.addRow("Depth", self.depth)
        form.addRow("", self.flip)
        lay.addLayout(form)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        buttons = QHBoxLayout()
        self.place_button = QPushButton("Place")
        self.place_button.setToolTip(
            "Onto the active depth control layer, nearer wins; a new depth group when none "
            "is active. Move or transform it afterwards like any layer."
        )
        self.place_button.clicked.connect(self.place)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addStretch(1)
        buttons.addWidget(self.place_button)
        buttons.addWidget(close)
        lay.addLayout(buttons)
        self.reload()

    # -- listing ------------------------------------------------------------------------
    def reload(self) -> None:
        """Read both folders again (the artist may have added maps) and place the next
        map in the middle of the selection or canvas."""
        self.listing = dl.list_assets(self.bundled, self.user)
        self.maps = {}
        problems = list(self.listing.problems)
        for asset in list(self.listing.assets):
            try:
                self.maps[asset.key] = dl.load(asset)
            except dl.DepthAssetError as exc:
                problems.append(str(exc))
                self.listing.assets.remove(asset)
        n = len(problems)
        self.problems.setText(
            f"{n} file{'s' if n != 1 else ''} skipped: {problems[0]}" if problems else ""
        )
        self.problems.setToolTip("\n".join(problems))
        self.problems.setVisible(bool(problems))
        current = self.category.currentText()
        self.category.blockSignals(True)
        self.category.clear()
        self.category.addItems(self.listing.categories())
        if current:
            self.category.setCurrentText(current)
        self.category.blockSignals(False)
        self._fill_assets()
        self._default_placement()

    def _fill_assets(self) -> None:
        self.assets.clear()
        for asset in self.listing.in_category(self.category.currentText()):
            item = QListWidgetItem(QIcon(_pixmap(self.maps[asset.key])), asset.label)
            item.setData(Qt.UserRole, asset.key)
            item.setToolTip(f"{asset.key} ({'shipped' if asset.builtin else asset.path})")
            self.assets.addItem(item)
        if self.assets.count():
            self.assets.setCurrentRow(0)

    def select(self, key: str) -> bool:
        """Show `key`'s category and select it (as a click would)."""
        asset = next((a for a in self.listing.assets if a.key == key), None)
        if asset is None:
            return False
        self.category.setCurrentText(asset.category)
        for i in range(self.assets.count()):
            if self.assets.item(i).data(Qt.UserRole) == key:
                self.assets.setCurrentRow(i)
                return True
        return False

    def _default_placement(self) -> None:
        doc = Krita.instance().activeDocument()
        if doc is None:
            return
        p = dl.fitting((256, 256), host.canvas_rect(doc), host.selection_rect(doc))
        self.x.setValue(p.x)
        self.y.setValue(p.y)
        self.scale.setValue(p.scale)

    def placement(self) -> dl.Placement:
        return dl.Placement(
            self.x.value(),
            self.y.value(),
            self.scale.value(),
            self.rotation.value(),
            self.flip.isChecked(),
            self.depth.value(),
        )

    # -- placing --------------------------------------------------------------------------
    def place(self) -> str | None:
        """Place the selected map; the id of the depth control layer it went into."""
        item = self.assets.currentItem()
        try:
            if item is None:
                raise PlanError("Pick a depth map first.")
            doc = host.active_document()
            key = item.data(Qt.UserRole)
            asset = next(a for a in self.listing.assets if a.key == key)
            placed = dl.place(self.maps[key], self.placement(), host.canvas_rect(doc))
            if placed is None:
                raise PlanError("That placement puts the map outside the canvas.")
            marks = self.controller.marks(doc)
            recent = self.recent if self.recent and host.find_node(doc, self.recent) else None
            where = dl.target(host.active_chain(doc), marks, recent)
            keep = host.KeepActive(doc)  # the artist's layer stays the one they paint on
            holder = host.place_depth(
                doc, where, dl.layer_name(asset), dl.GROUP_NAME, dl.BLENDING, placed.rgba,
                placed.rect,
            )  # fmt: skip
            if where.kind != "group":  # a new group, or the merged layer's new id
                old = marks.get(where.node_id or "")
                if where.kind == "new":
                    d = defaults("depth")
                    old = ControlMark("depth", d.weight, d.start, d.end)
                self.controller.set_mark(holder, old, doc)
            if where.kind != "merge":  # (merging keeps the depth layer active itself)
                keep.add(holder)
                keep.finish()
                self.recent = holder
        except (PlanError, dl.DepthAssetError, ValueError) as exc:
            self._tell(str(exc), "warning")
            return None
        except Exception as exc:  # a Krita surprise: say so, keep the dialog alive
            self._tell(f"Could not place the depth map: {exc}", "error")
            return None
        self._tell(f"Placed {asset.label} ({_where(where)}).", "info")
        return holder

    def _tell(self, text: str, level: str) -> None:
        self.status.setText(text)
        self.say(text, level)


def _where(t: dl.Target) -> str:
    return {
        "group": "a new layer in the depth group",
        "merge": "merged into the depth layer",
        "new": f"a new '{dl.GROUP_NAME}' depth control",
    }[t.kind]


def _pixmap(grey) -> QPixmap:
    h, w = grey.shape
    image = QImage(grey.tobytes(), w, h, w, QImage.Format_Grayscale8).copy()
    return QPixmap.fromImage(image).scaled(
        THUMB, THUMB, Qt.KeepAspectRatio, Qt.SmoothTransformation
    )
