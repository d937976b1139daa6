"""Small Qt pieces the docker's sections, its pickers and the style editor share."""

from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage
from PyQt5.QtWidgets import QHBoxLayout, QToolButton, QVBoxLayout, QWidget


def to_qimage(img: np.ndarray) -> QImage:
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if img.shape[2] == 4:
        q = QImage(img.data, w, h, 4 * w, QImage.Format_RGBA8888)
    else:
        q = QImage(img.data, w, h, 3 * w, QImage.Format_RGB888)
    return q.copy()  # own the pixels: the array may go away


class Fold(QWidget):
    """A titled section that folds away: rarely used settings stay out of the way."""

    def __init__(self, title: str, content: QWidget, folded: bool = True):
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.toggled.connect(self._show)
        self.content = content
        lay.addWidget(self.toggle)
        lay.addWidget(content)
        self.toggle.setChecked(not folded)
        self._show(not folded)

    def _show(self, on: bool) -> None:
        self.toggle.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.content.setVisible(on)


def row(*widgets, stretch: int = 0) -> QHBoxLayout:
    """One line of widgets without margins; the `stretch`-th takes the spare width."""
    line = QHBoxLayout()
    line.setContentsMargins(0, 0, 0, 0)
    for i, w in enumerate(widgets):
        line.addWidget(w, 1 if i == stretch else 0)
    return line
