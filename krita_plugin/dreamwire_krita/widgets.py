"""Small layout helpers the docker's pickers and the style editor share."""

from __future__ import annotations

from PyQt5.QtWidgets import QHBoxLayout


def row(*widgets, stretch: int = 0) -> QHBoxLayout:
    """One line of widgets without margins; the `stretch`-th takes the spare width."""
    line = QHBoxLayout()
    line.setContentsMargins(0, 0, 0, 0)
    for i, w in enumerate(widgets):
        line.addWidget(w, 1 if i == stretch else 0)
    return line
