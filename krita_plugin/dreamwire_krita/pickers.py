"""The docker's pickers: styles, the model (grouped by family, searchable) and LoRAs.

Widgets only, no Krita import: decisions are logic/styles.py's, logic/model_picker.py's and
logic/lora_tags.py's; the docker wires them to its panel.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import QStringListModel, Qt
from PyQt5.QtGui import QBrush, QColor, QFont
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSlider,
    QToolButton,
    QWidget,
    QWidgetAction,
)

from dreamwire.shared.events import Welcome

from .logic import lora_tags, styles
from .logic import model_picker as mp
from .logic.library import Library, library, lora_choices
from .logic.style_store import StyleStore
from .logic.styles import Style, StyleError
from .style_editor import StyleEditor
from .widgets import row as _row

WARN = "#c08020"
NAME_ROLE = Qt.UserRole  # a style entry's name ("" = no style)


class ModelPicker(QWidget):
    """A list of the backend's checkpoints grouped by family (headers cannot be picked),
    those lacking a part greyed with the reason, and a search field whose completions are
    the only names it takes: no unknown name can be typed in."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()  # not editable: only listed names
        self.combo.setMinimumContentsLength(8)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.currentIndexChanged.connect(lambda _i: self._note())
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search…")
        self.search.setToolTip("Type part of a model's name or its family (e.g. 'xl turbo')")
        self.search.setMaximumWidth(70)
        self.found = QStringListModel(self)
        self.completer = QCompleter(self.found, self)
        # The list is filtered here (every word, family labels too); the completer shows it.
        self.completer.setCompletionMode(QCompleter.UnfilteredPopupCompletion)
        self.completer.setCaseSensitivity(Qt.CaseInsensitive)
        self.completer.setMaxVisibleItems(15)
        self.search.setCompleter(self.completer)
        self.search.textEdited.connect(self._filter)
        self.completer.activated[str].connect(self._chosen)
        self.search.returnPressed.connect(self._first)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {WARN}")
        self.note.setVisible(False)
        self.combo.setToolTip("Model: the backend's checkpoints by family")
        # One line, with room for the LoRA button; the docker puts `note` under it.
        self.extra = QHBoxLayout()
        row = _row(self.combo, self.search)
        row.addLayout(self.extra)
        self.setLayout(row)
        self.rows: list[mp.Row] = []
        self.welcome: Welcome | None = None

    def fill(self, welcome: Welcome | None, keep: str | None = None) -> None:
        """The welcome's models; `keep` (default: the current one) stays picked, shown as
        not on the backend when it is not listed."""
        before = self.current()
        keep = before if keep is None else keep
        self.welcome = welcome
        self.rows = mp.rows(library(welcome), keep, welcome)
        combo = self.combo
        combo.blockSignals(True)
        combo.clear()
        items = combo.model()
        bold = QFont(combo.font())
        bold.setBold(True)
        for row in self.rows:
            combo.addItem(row.text)
            item = items.item(combo.count() - 1)
            if row.header:
                item.setFlags(Qt.NoItemFlags)  # a family's title, never a choice
                item.setFont(bold)
                continue
            item.setToolTip(row.tip)
            if not row.usable:
                item.setForeground(QBrush(QColor(WARN)))
        combo.setCurrentIndex(self._index(keep))
        combo.blockSignals(False)
        self._note()
        if self.current() != before:  # the panel follows a model that changed here
            combo.currentTextChanged.emit(self.current())

    def select(self, name: str) -> None:
        """Pick `name`; one the list lacks is added as not on the backend (a saved
        panel's or a style's), so the panel never silently runs another model."""
        if name and self.combo.findText(name, Qt.MatchExactly) < 0:
            self.fill(self.welcome, name)
            return
        self.combo.setCurrentIndex(self._index(name))
        self._note()

    def _index(self, name: str) -> int:
        """`name`'s row; for none, the backend's default model, else its first."""
        for want in (name, self.welcome.default_model if self.welcome is not None else ""):
            index = self.combo.findText(want, Qt.MatchExactly) if want else -1
            if index >= 0:
                return index
        return next((i for i, r in enumerate(self.rows) if not r.header), -1)

    def current(self) -> str:
        return self.combo.currentText()

    def _current_row(self) -> mp.Row | None:
        i = self.combo.currentIndex()
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def _note(self) -> None:
        row = self._current_row()
        text = "" if row is None or row.usable or self.welcome is None else row.tip
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _filter(self, text: str) -> None:
        self.found.setStringList(mp.search(self.rows, text, self.welcome) if text else [])
        if text:
            self.completer.complete()

    def _chosen(self, name: str) -> None:
        self.select(name)
        self.search.clear()

    def _first(self) -> None:
        hits = mp.search(self.rows, self.search.text(), self.welcome)
        if hits:
            self._chosen(hits[0])


class LoraPicker(QWidget):
    """Pick a LoRA the backend lists and a weight: Add writes <lora:name:weight> into the
    prompt (or gives the tag already there the new weight). Only the LoRAs that fit the
    panel's model's family are listed (and those of unknown family), unless "All" is
    ticked: then the others follow them."""

    SCALE = 100  # slider steps per 1.0

    def __init__(self, insert: Callable[[str, float], None], parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(10)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setToolTip("The backend's LoRAs (type the first letters to jump)")
        self.slider = QSlider(Qt.Horizontal)
        low, high = lora_tags.WEIGHT_RANGE
        self.slider.setRange(int(low * self.SCALE), int(high * self.SCALE))
        self.slider.setSingleStep(5)
        self.slider.setPageStep(25)
        self.slider.setValue(self.SCALE)
        self.slider.setToolTip("The LoRA's weight")
        self.weight_label = QLabel()
        self.weight_label.setMinimumWidth(30)
        self.slider.valueChanged.connect(lambda _v: self.weight_label.setText(self.weight_text()))
        self.weight_label.setText(self.weight_text())
        self.add_button = QToolButton()
        self.add_button.setText("Add")
        self.add_button.setToolTip("Insert <lora:name:weight> into the prompt")
        self.add_button.clicked.connect(lambda: insert(self.combo.currentText(), self.weight()))
        self.show_all = QCheckBox("All")
        self.show_all.setToolTip("List the LoRAs made for other model families too")
        self.show_all.toggled.connect(lambda _on: self.fill(self.lib))
        row = _row(self.combo, self.show_all, self.slider, self.weight_label, self.add_button)
        row.setStretch(0, 2)
        row.setStretch(2, 1)
        self.setLayout(row)
        self.lib = Library()
        self.model = ""  # the panel's model, whose family the list follows
        self.setMinimumWidth(320)
        # Shown from a button's menu beside the model: no line of its own in the docker.
        self.button = QToolButton()
        self.button.setText("LoRA")
        self.button.setToolTip("Insert a LoRA with a weight into the prompt")
        self.button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.button)
        action = QWidgetAction(menu)
        action.setDefaultWidget(self)
        menu.addAction(action)
        self.button.setMenu(menu)
        self.fill(Library())

    def weight(self) -> float:
        return self.slider.value() / self.SCALE

    def weight_text(self) -> str:
        return lora_tags.weight_text(self.weight())

    def set_model(self, model: str) -> None:
        """The panel's model changed: list its family's LoRAs."""
        if model != self.model:
            self.model = model
            self.fill(self.lib)

    def fill(self, lib: Library) -> None:
        self.lib = lib
        family = lib.families.get(self.model, "")
        found = lora_choices(lib, family, self.show_all.isChecked())
        current = self.combo.currentText()
        self.combo.clear()
        self.combo.addItems(list(found.names))
        for i in range(found.fitting, len(found.names)):  # another family's: marked
            self.combo.setItemData(i, QBrush(QColor(WARN)), Qt.ForegroundRole)
            self.combo.setItemData(i, "Made for another model family", Qt.ToolTipRole)
        self.combo.setCurrentText(current)
        label = mp.family_label(family) if family else ""
        hidden = f" ({found.hidden} for other families hidden)" if found.hidden else ""
        self.combo.setToolTip(f"The backend's {label} LoRAs{hidden}".replace("  ", " "))
        has = bool(lib.loras)
        self.add_button.setEnabled(bool(found.names))
        self.combo.setEnabled(bool(found.names))
        self.button.setEnabled(has)
        self.button.setToolTip(
            "Insert a LoRA with a weight into the prompt" if has else "The backend lists no LoRAs"
        )


class StyleDialog(QDialog):
    """Save the panel's model and sampling as a style, with a name, a prompt template,
    a negative prompt and LoRAs; closes only with values a style file accepts."""

    def __init__(self, base: Style | None, panel: dict, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Save style")
        self.panel = panel  # model, sampler, steps, cfg, distilled_cfg
        form = QFormLayout(self)
        self.name = QLineEdit(base.name if base and not base.builtin else "")
        self.name.setPlaceholderText("e.g. Ink and wash")
        self.template = QLineEdit(base.prompt if base else styles.PLACEHOLDER)
        self.template.setToolTip("{prompt} is replaced by your prompt; without it, appended")
        self.negative = QLineEdit(base.negative if base else "")
        self.loras = QLineEdit(
            lora_tags.list_text([(x.name, x.weight) for x in base.loras]) if base else ""
        )
        self.loras.setPlaceholderText("name:weight, name:weight")
        form.addRow("Name", self.name)
        form.addRow("Prompt template", self.template)
        form.addRow("Negative prompt", self.negative)
        form.addRow("LoRAs", self.loras)
        form.addRow(
            QLabel(
                f"From the panel: {panel['model'] or '(backend default)'}, {panel['sampler']}, "
                f"{panel['steps']} steps, CFG {panel['cfg']:g}"
            )
        )
        self.feedback = QLabel("")
        self.feedback.setWordWrap(True)
        self.feedback.setStyleSheet("color: #d04040")
        form.addRow(self.feedback)
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.style: Style | None = None

    def value(self) -> Style:
        p = self.panel
        return styles.from_panel(
            self.name.text(),
            p["model"],
            p["sampler"],
            p["steps"],
            p["cfg"],
            p["distilled_cfg"],
            self.template.text(),
            self.negative.text(),
            self.loras.text(),
        )

    def accept(self) -> None:
        try:
            self.style = self.value()
        except StyleError as exc:
            self.feedback.setText(str(exc))
            return
        super().accept()


class _StyleCombo(QComboBox):
    """Reads the styles folder again each time it opens: a file added by hand shows up."""

    def __init__(self, before_popup: Callable[[], None]):
        super().__init__()
        self.before_popup = before_popup

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self.before_popup()
        super().showPopup()


class StyleBar(QWidget):
    """The style combo ("No style" first), a menu with Save… and Delete, the style editor's
    button, and a line naming the style files skipped as broken. Picking a style calls
    `picked` with it (None: no style)."""

    def __init__(
        self,
        store: StyleStore,
        picked: Callable[[Style | None], None],
        panel: Callable[[], dict],
        say: Callable[[str, str], None],
        parent=None,
        welcome: Callable[[], Welcome | None] = lambda: None,
    ):
        super().__init__(parent)
        self.store = store
        self.picked, self.panel, self.say, self.welcome = picked, panel, say, welcome
        self.styles: dict[str, Style] = {}
        self.problems: list[str] = []
        self.lib = Library()
        self.combo = _StyleCombo(lambda: self.reload())
        self.combo.setMinimumContentsLength(6)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        # activated: the artist's click only, never the panel being restored.
        self.combo.activated.connect(lambda _i: self.picked(self.current()))
        self.combo.currentIndexChanged.connect(lambda _i: self._buttons())
        # Save and Delete in a menu beside the combo: the docker has no line to spare.
        self.menu_button = QToolButton()
        self.menu_button.setText("⋯")
        self.menu_button.setToolTip(f"Save or delete styles (files in {store.folder})")
        self.menu_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.menu_button)
        self.save_action = menu.addAction("Save current as style…")
        self.save_action.setToolTip("The panel's model and sampling, with a prompt template")
        self.save_action.triggered.connect(lambda _c=False: self.save_current())
        self.delete_action = menu.addAction("Delete this style")
        self.delete_action.triggered.connect(lambda _c=False: self.delete_current())
        self.menu_button.setMenu(menu)
        self.problem_label = QLabel("")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(f"color: {WARN}")
        self.problem_label.setVisible(False)
        # The editor opens from a button beside the combo: no height added to the docker.
        self.edit_button = QToolButton()
        self.edit_button.setText("✎")
        self.edit_button.setToolTip("Edit styles: new, duplicate, change, delete")
        self.edit_button.clicked.connect(lambda _c=False: self.open_editor().exec_())
        # One line; the docker puts `problem_label` under it.
        self.setLayout(_row(self.combo, self.edit_button, self.menu_button))
        self.reload()

    def open_editor(self) -> StyleEditor:
        """The style editor on the style picked here; each save or delete shows in the
        combo at once, and the picked style's new settings reach the panel on close."""
        dlg = StyleEditor(self.store, self.welcome(), self.name(), self.panel()["model"], self)
        dlg.saved.connect(lambda _name: self.reload(keep=self._kept(dlg)))
        dlg.finished.connect(lambda _r: self._after_editing(dlg))
        self._editing = self.current()
        return dlg

    def _kept(self, dlg: StyleEditor) -> str:
        """The docker's style, under its new name when the editor renamed it."""
        name = self._editing.name if self._editing is not None else ""
        return dlg.renamed.get(name, name)

    def _after_editing(self, dlg: StyleEditor) -> None:
        before = self._editing
        self.reload(keep=self._kept(dlg))
        now = self.current()
        if before is not None and now is not None and now != before:
            self.picked(now)  # the style in use was edited: the panel takes its sampling

    def reload(self, keep: str | None = None) -> list[str]:
        """Read the folder again; a broken file is skipped and named under the combo."""
        keep = self.name() if keep is None else keep
        loaded = self.store.load()
        self.styles = {s.name: s for s in loaded.styles}
        self.problems = loaded.problems
        n = len(self.problems)
        text = f"{n} style file{'s' if n > 1 else ''} skipped: " + "; ".join(self.problems)
        self.problem_label.setText(text if n else "")
        self.problem_label.setVisible(bool(n))
        self.show_library(self.lib, keep)
        return self.problems

    def show_library(self, lib: Library, keep: str | None = None) -> None:
        """Each entry marked with what the backend lacks for it (a missing checkpoint)."""
        self.lib = lib
        keep = self.name() if keep is None else keep
        combo = self.combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("No style", "")
        combo.setItemData(0, "The panel's model, prompt and sampling as they are", Qt.ToolTipRole)
        for style in self.styles.values():
            combo.addItem(styles.label(style, lib), style.name)
            combo.setItemData(combo.count() - 1, styles.describe(style, lib), Qt.ToolTipRole)
        combo.blockSignals(False)
        self.select(keep)

    def select(self, name: str) -> None:
        """Show `name` as the current style ("No style" when there is none by that name)."""
        self.combo.setCurrentIndex(max(0, self.combo.findData(name)))
        self._buttons()

    def name(self) -> str:
        return self.combo.currentData() or ""

    def current(self) -> Style | None:
        return self.styles.get(self.name())

    def save_current(self) -> Style | None:
        dlg = StyleDialog(self.current(), self.panel(), self)
        if dlg.exec_() != QDialog.Accepted or dlg.style is None:
            return None
        return self.save(dlg.style)

    def save(self, style: Style) -> Style | None:
        try:
            path = self.store.save(style)
        except StyleError as exc:
            self.say(str(exc), "error")
            return None
        self.reload(keep=style.name)
        self.say(f"Saved style {style.name!r} in {path}.", "info")
        return style

    def delete_current(self, confirm: bool = True) -> None:
        from PyQt5.QtWidgets import QMessageBox

        name = self.name()
        if name not in self.store.paths:
            return
        ask = f"Delete the style {name!r} ({self.store.paths[name].name})?"
        if confirm and QMessageBox.question(self, "Delete style", ask) != QMessageBox.Yes:
            return
        try:
            self.store.delete(name)
        except StyleError as exc:
            self.say(str(exc), "error")
            return
        self.reload(keep=name)  # a shipped style of that name is back; else none
        self.say(f"Deleted style {name!r}.", "info")

    def _buttons(self) -> None:
        style = self.current()
        self.delete_action.setEnabled(style is not None and style.name in self.store.paths)
        self.combo.setToolTip(self.combo.itemData(self.combo.currentIndex(), Qt.ToolTipRole) or "")
