"""The docker's History section: results wait here as previews (Krita AI Diffusion's
history); pick one to see it in the preview layer, then apply it; searchable by prompt;
saved with the .kra (result_history.py holds the entries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt5.QtCore import QSize
from PyQt5.QtGui import QIcon, QPixmap
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .logic import history as hist
from .widgets import to_qimage

if TYPE_CHECKING:
    from .result_history import ResultHistory


class HistoryPanel(QWidget):
    def __init__(self, results: ResultHistory, reuse: Callable[[int], None]):
        """`reuse(index)`: the docker takes entry `index`'s settings back into its fields."""
        super().__init__()
        self.results = results
        self.shown_version = -1  # the history version the list shows
        self.rows: list[int] = []  # the shown rows' history indices
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self.fill())
        lay.addWidget(self.search)
        self.list = QListWidget()
        self.list.setIconSize(QSize(hist.THUMB_SIDE, hist.THUMB_SIDE))
        self.list.setMinimumHeight(60)
        self.list.setMaximumHeight(2 * hist.THUMB_SIDE)  # fits 1080p beside Layers
        self.list.currentRowChanged.connect(self._picked)
        lay.addWidget(self.list)
        row = QHBoxLayout()
        for attr, text, tip, act in (
            (
                "apply_button",
                "Apply",
                "Place the result on top, masked to its selection",
                lambda i: results.apply(i),
            ),
            (
                "apply_layer_button",
                "As layer",
                "Place the result as one plain layer right above the layer you paint on",
                lambda i: results.apply(i, new_layer=True),
            ),
            ("copy_button", "Reuse", "Copy the result's prompt, seed and settings back", reuse),
            ("discard_button", "Discard", "Take the result out of the history", results.discard),
        ):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False, act=act: self._on_row(act))
            setattr(self, attr, b)
            row.addWidget(b)
        lay.addLayout(row)

    def _on_row(self, act: Callable[[int], object]) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.rows):
            act(self.rows[row])

    def _picked(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.results.show(self.rows[row])

    def refresh(self) -> None:
        """Refill when the history changed since the list was filled."""
        if self.results.history.version != self.shown_version:
            self.fill()

    def fill(self) -> None:
        """The entries whose prompt matches the search, newest first; the selected one
        stays selected (without showing its preview again)."""
        h = self.results.history
        rows = hist.search(h, self.search.text())
        shown = self.results.shown
        keep = shown.key if shown is not None else None
        self.list.blockSignals(True)
        self.list.clear()
        for i in rows:
            entry = h[i]
            item = QListWidgetItem(
                QIcon(QPixmap.fromImage(to_qimage(entry.thumb))), entry.summary()
            )
            item.setToolTip(entry.infotext)
            self.list.addItem(item)
            if entry.key == keep:
                self.list.setCurrentRow(self.list.count() - 1)
        self.list.blockSignals(False)
        self.rows = rows
        self.shown_version = h.version
