"""The style editor: create, duplicate, edit and delete styles (Krita AI Diffusion's Style
Presets page, as a dialog opened from the button beside the docker's style combo).

Widgets only, no Krita import: the rules (names, checks, shipped styles never changed, the
LoRAs a model's family takes) are logic/style_edit.py's, logic/styles.py's and
logic/library.py's. New and Duplicate write the style's file at once, as Krita AI Diffusion
does; the fields' changes are written by Save, and asked about before another style is
shown or the dialog closes.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QBrush, QColor, QFont
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
)

from dreamwire.shared.events import Welcome
from dreamwire.shared.schedule_types import SCHEDULE_TYPES, split_sampler

from .logic import model_picker as mp
from .logic import style_edit, styles
from .logic.library import library, lora_choices, names
from .logic.style_store import StyleStore
from .logic.styles import SHIPPED, Style, StyleError
from .widgets import row as _row

WARN = "#c08020"
ERROR = "#d04040"
SHIPPED_NAMES = [s.name for s in SHIPPED]


def _tool(text: str, tip: str, slot) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.clicked.connect(lambda _c=False: slot())
    return b


class StyleEditor(QDialog):
    """Every style in a list; the picked one's fields below. `saved` carries the name of a
    style written or deleted, so the docker's combo follows at once."""

    saved = pyqtSignal(str)

    def __init__(
        self,
        store: StyleStore,
        welcome: Welcome | None,
        current: str = "",
        model: str = "",
        parent=None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Styles")
        self.store, self.welcome, self.model = store, welcome, model
        self.lib = library(welcome)
        self.styles: dict[str, Style] = {}
        self.base: Style | None = None  # the style the fields show, as last saved
        self.renamed: dict[str, str] = {}  # old name -> new, for the docker's combo

        # -- the list and what to do with it ---------------------------------------------
        self.list = QComboBox()
        self.list.activated.connect(lambda _i: self._switch(self.list.currentData()))
        self.new_button = _tool("New", "A new style on the panel's model", self.new)
        self.duplicate_button = _tool("Duplicate", "A copy of this style", self.duplicate)
        self.delete_button = _tool("Delete", "Delete this style's file", self.delete)
        top = _row(self.list, self.new_button, self.duplicate_button, self.delete_button)
        self.shipped_note = QLabel("")
        self.shipped_note.setWordWrap(True)

        # -- the fields --------------------------------------------------------------------
        self.name = QLineEdit()
        self.checkpoints = QListWidget()
        self.checkpoints.setToolTip("The first of these the backend has is used")
        self.checkpoints.setMaximumHeight(80)
        self.model_add = QComboBox()
        self.model_add.setToolTip("The backend's checkpoints by family")
        add_model = _tool("Add", "Add this checkpoint to the list", self._add_checkpoint)
        up = _tool("↑", "Prefer this checkpoint", lambda: self._move_checkpoint(-1))
        down = _tool("↓", "Prefer it less", lambda: self._move_checkpoint(1))
        drop = _tool("Remove", "Remove this checkpoint", self._remove_checkpoint)
        ck = QVBoxLayout()
        ck.addWidget(self.checkpoints)
        ck.addLayout(_row(self.model_add, add_model, up, down, drop))

        self.loras = QTableWidget(0, 2)
        self.loras.setHorizontalHeaderLabels(["LoRA", "Weight"])
        self.loras.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.loras.verticalHeader().setVisible(False)
        self.loras.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.loras.setMaximumHeight(90)
        self.lora_add = QComboBox()
        self.lora_all = QCheckBox("All")
        self.lora_all.setToolTip("List the LoRAs made for other model families too")
        self.lora_all.toggled.connect(lambda _on: self._fill_lora_add())
        add_lora = _tool("Add", "Add this LoRA at weight 1", self._add_lora_row)
        drop_lora = _tool("Remove", "Remove the selected LoRA", self._remove_lora)
        lo = QVBoxLayout()
        lo.addWidget(self.loras)
        lo.addLayout(_row(self.lora_add, self.lora_all, add_lora, drop_lora))

        self.prompt = QLineEdit()
        self.prompt.setToolTip("{prompt} is replaced by your prompt; without it, appended")
        self.negative = QLineEdit()
        self.sampler = QComboBox()
        self.schedule = QComboBox()
        self.schedule.addItems(list(SCHEDULE_TYPES))
        self.steps = QSpinBox()
        self.steps.setRange(1, styles.MAX_STEPS)
        self.cfg = QDoubleSpinBox()
        self.cfg.setRange(0.0, styles.MAX_CFG)
        self.cfg.setSingleStep(0.5)
        sampling = _row(self.sampler, self.schedule, QLabel("Steps"), self.steps)
        sampling.addWidget(QLabel("CFG"))
        sampling.addWidget(self.cfg)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Checkpoints", ck)
        form.addRow("LoRAs", lo)
        form.addRow("Prompt template", self.prompt)
        form.addRow("Negative prompt", self.negative)
        form.addRow("Sampler", sampling)
        self.missing = QLabel("")  # what the backend lacks for the style as it stands
        self.missing.setWordWrap(True)
        self.missing.setStyleSheet(f"color: {WARN}")
        self.feedback = QLabel("")  # why Save refused, or what it did
        self.feedback.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda _c=False: self.save())
        close = QPushButton("Close")
        close.clicked.connect(lambda _c=False: self.reject())
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.shipped_note)
        lay.addLayout(form)
        lay.addWidget(self.missing)
        lay.addWidget(self.feedback)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        lay.addLayout(buttons)
        for edit in (self.name, self.prompt, self.negative):
            edit.textChanged.connect(lambda _t: self._changed())
        self.steps.valueChanged.connect(lambda _v: self._changed())
        self.cfg.valueChanged.connect(lambda _v: self._changed())
        self.resize(520, 0)

        self._fill_models()
        self._reload(current or (SHIPPED_NAMES[0] if SHIPPED_NAMES else ""))

    # -- the list ------------------------------------------------------------------------
    def _reload(self, select: str) -> None:
        loaded = self.store.load()
        self.styles = {s.name: s for s in loaded.styles}
        self.list.clear()
        for s in loaded.styles:
            mark = " (shipped)" if s.builtin else ""
            self.list.addItem(f"{s.name}{mark}", s.name)
        name = select if select in self.styles else next(iter(self.styles), "")
        self.list.setCurrentIndex(max(0, self.list.findData(name)))
        if name:
            self._show(self.styles[name])

    def _switch(self, name: str) -> None:
        if self.base is not None and name == self.base.name:
            return
        if not self._settle():
            self.list.setCurrentIndex(max(0, self.list.findData(self.base.name)))
            return
        self._show(self.styles[name])

    def _settle(self) -> bool:
        """Unsaved changes: save, drop or stay (False)."""
        if not self.dirty():
            return True
        ask = QMessageBox.question(
            self,
            "Styles",
            f"Save the changes to {self.base.name!r}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
        )
        if ask == QMessageBox.Save:
            return self.save()
        return ask == QMessageBox.Discard

    # -- the fields ----------------------------------------------------------------------
    def _show(self, style: Style) -> None:
        self.base = style
        self.name.setText(style.name)
        self.checkpoints.clear()
        for c in style.checkpoints:
            self._append_checkpoint(c)
        self.loras.setRowCount(0)
        for x in style.loras:
            self._append_lora(x.name, x.weight)
        self.prompt.setText(style.prompt)
        self.negative.setText(style.negative)
        self._fill_samplers(style.sampler)
        self.schedule.setCurrentText(style.schedule)
        self.steps.setValue(style.steps)
        self.cfg.setValue(style.cfg)
        shipped = style.builtin or style.name in SHIPPED_NAMES
        self.shipped_note.setText(
            "A shipped style: Save keeps your copy under its name, in its place."
            if style.builtin
            else "Your copy of a shipped style: Delete brings the shipped one back."
            if shipped
            else ""
        )
        self.shipped_note.setVisible(shipped)
        self.delete_button.setEnabled(style_edit.deletable(self.store, style.name))
        self.feedback.setText("")
        self._fill_lora_add()
        self._changed()

    def draft(self) -> style_edit.Draft:
        rows = range(self.loras.rowCount())
        return style_edit.Draft(
            name=self.name.text(),
            checkpoints=tuple(
                self.checkpoints.item(i).text() for i in range(self.checkpoints.count())
            ),
            loras=tuple((self.loras.item(r, 0).text(), self._weight(r)) for r in rows),
            prompt=self.prompt.text(),
            negative=self.negative.text(),
            sampler=self.sampler.currentText(),
            schedule=self.schedule.currentText(),
            steps=self.steps.value(),
            cfg=self.cfg.value(),
        )

    def _weight(self, row: int) -> float:
        """The row's weight; a file's 0.333 shown as 0.33 and left alone stays 0.333, so
        opening a style never counts as a change."""
        spin = self.loras.cellWidget(row, 1)
        exact = spin.property("exact")
        return exact if exact is not None and round(exact, 2) == spin.value() else spin.value()

    def dirty(self) -> bool:
        return self.base is not None and self.draft() != style_edit.draft_of(self.base)

    def _changed(self) -> None:
        """What the backend lacks for the style as the fields stand."""
        try:
            style = style_edit.build(self.draft(), self.base, [])
        except StyleError:
            self.missing.setText("")
            return
        found = styles.resolve(style, self.lib)
        lines = [found.note] if found.note else []
        gone = styles.missing_loras(style, self.lib)
        lines += [f"LoRA {name!r} is not on the backend" for name in gone]
        self.missing.setText("; ".join(lines))
        self.missing.setVisible(bool(lines))

    # -- checkpoints ---------------------------------------------------------------------
    def _fill_models(self) -> None:
        combo = self.model_add
        items = combo.model()
        bold = QFont(combo.font())
        bold.setBold(True)
        for row in mp.rows(self.lib, self.model, self.welcome):
            combo.addItem(row.text)
            if row.header:
                items.item(combo.count() - 1).setFlags(Qt.NoItemFlags)
                items.item(combo.count() - 1).setFont(bold)
        i = combo.findText(self.model, Qt.MatchExactly) if self.model else -1
        first = next((i for i in range(combo.count()) if items.item(i).isEnabled()), -1)
        combo.setCurrentIndex(i if i >= 0 else first)

    def _append_checkpoint(self, name: str) -> None:
        self.checkpoints.addItem(name)
        if self.lib.known and name not in self.lib.models:
            item = self.checkpoints.item(self.checkpoints.count() - 1)
            item.setForeground(QBrush(QColor(WARN)))
            item.setToolTip(f"{name} is not on the backend")

    def _add_checkpoint(self) -> None:
        name = self.model_add.currentText()
        have = [self.checkpoints.item(i).text() for i in range(self.checkpoints.count())]
        if name and name not in have:
            self._append_checkpoint(name)
            self._checkpoints_changed()

    def _checkpoints_changed(self) -> None:
        self._fill_lora_add()  # another first checkpoint: maybe another family's LoRAs
        self._changed()

    def _move_checkpoint(self, by: int) -> None:
        row = self.checkpoints.currentRow()
        to = row + by
        if row < 0 or not 0 <= to < self.checkpoints.count():
            return
        item = self.checkpoints.takeItem(row)
        self.checkpoints.insertItem(to, item)
        self.checkpoints.setCurrentRow(to)
        self._checkpoints_changed()

    def _remove_checkpoint(self) -> None:
        row = self.checkpoints.currentRow()
        if row >= 0:
            self.checkpoints.takeItem(row)
            self._checkpoints_changed()

    # -- LoRAs ---------------------------------------------------------------------------
    def family(self) -> str:
        """The family of the model the style runs on here: its LoRAs are listed first."""
        try:
            style = style_edit.build(self.draft(), self.base, [])
        except StyleError:
            return self.base.family if self.base is not None else ""
        found = styles.resolve(style, self.lib)
        if found.model:
            return self.lib.families.get(found.model, "")
        return style.family

    def _fill_lora_add(self) -> None:
        found = lora_choices(self.lib, self.family(), self.lora_all.isChecked())
        current = self.lora_add.currentText()
        self.lora_add.clear()
        self.lora_add.addItems(list(found.names))
        for i in range(found.fitting, len(found.names)):
            self.lora_add.setItemData(i, QBrush(QColor(WARN)), Qt.ForegroundRole)
        self.lora_add.setCurrentText(current)
        hidden = f" ({found.hidden} for other families hidden)" if found.hidden else ""
        self.lora_add.setToolTip(f"The backend's LoRAs for this style's model{hidden}")

    def _append_lora(self, name: str, weight: float) -> None:
        r = self.loras.rowCount()
        self.loras.insertRow(r)
        item = QTableWidgetItem(name)
        item.setFlags(item.flags() & ~Qt.ItemIsEditable)
        self.loras.setItem(r, 0, item)
        spin = QDoubleSpinBox()
        spin.setRange(-10.0, 10.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(weight)
        spin.setProperty("exact", float(weight))
        spin.valueChanged.connect(lambda _v: self._changed())
        self.loras.setCellWidget(r, 1, spin)

    def _add_lora_row(self) -> None:
        name = self.lora_add.currentText()
        have = {self.loras.item(r, 0).text() for r in range(self.loras.rowCount())}
        if name and name not in have:
            self._append_lora(name, 1.0)
            self._changed()

    def _remove_lora(self) -> None:
        row = self.loras.currentRow()
        if row >= 0:
            self.loras.removeRow(row)
            self._changed()

    # -- sampling ------------------------------------------------------------------------
    def _fill_samplers(self, keep: str) -> None:
        """The backend's samplers without their schedule types (a style keeps those in
        its own field), the style's own even when the backend does not list it."""
        listed = names(self.welcome.samplers) if self.welcome is not None else ()
        found = [split_sampler(s)[0] for s in listed]
        self.sampler.clear()
        self.sampler.addItems(list(dict.fromkeys([*found, keep] if keep else found)))
        self.sampler.setCurrentText(keep)

    # -- actions -------------------------------------------------------------------------
    def taken(self) -> list[str]:
        return list(self.styles)

    def save(self) -> bool:
        """Write the fields; False (and why, in the dialog) when they are refused."""
        try:
            style = style_edit.build(self.draft(), self.base, self.taken())
            path = style_edit.save(self.store, style, self.base)
        except StyleError as exc:
            self._say(str(exc), error=True)
            return False
        if self.base is not None and self.base.name != style.name:
            old = next((k for k, v in self.renamed.items() if v == self.base.name), self.base.name)
            self.renamed[old] = style.name
        self.base = None  # nothing unsaved while the list is read again
        self._reload(style.name)
        self._say(f"Saved {style.name!r} in {path}.")
        self.saved.emit(style.name)
        return True

    def _add(self, style: Style) -> None:
        """A new style's file at once, then its fields to edit."""
        if not self._settle():
            return
        try:
            path = style_edit.save(self.store, style, None)
        except StyleError as exc:
            self._say(str(exc), error=True)
            return
        self.base = None
        self._reload(style.name)
        self._say(f"Made {style.name!r} ({path.name}).")
        self.saved.emit(style.name)

    def new(self) -> None:
        self._add(style_edit.new_style(self.model, self.taken(), self.base))

    def duplicate(self) -> None:
        if self.base is not None:
            self._add(style_edit.duplicate(self.base, self.taken()))

    def delete(self, confirm: bool = True) -> None:
        name = self.base.name if self.base is not None else ""
        if not style_edit.deletable(self.store, name):
            return
        ask = f"Delete the style {name!r} ({self.store.paths[name].name})?"
        if confirm and QMessageBox.question(self, "Styles", ask) != QMessageBox.Yes:
            return
        try:
            text = style_edit.delete(self.store, name, SHIPPED_NAMES)
        except StyleError as exc:
            self._say(str(exc), error=True)
            return
        self.base = None
        self._reload(name)  # the shipped style of that name, if any; else the first
        self._say(text)
        self.saved.emit(name)

    def _say(self, text: str, error: bool = False) -> None:
        self.feedback.setText(text)
        self.feedback.setStyleSheet(f"color: {ERROR}" if error else "")

    def reject(self) -> None:
        """Close, Escape and the window's close button alike: unsaved changes asked about."""
        if self._settle():
            super().reject()
