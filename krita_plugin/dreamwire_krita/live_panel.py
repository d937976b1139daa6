"""The docker's Live workspace: the toggle, the strength live previews may change the
canvas by, a new seed, and Apply (live_actions.py does the work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt5.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .logic import live
from .logic.params import Params

if TYPE_CHECKING:
    from .live_actions import LiveActions


class LivePanel(QWidget):
    def __init__(self, actions: LiveActions, params: Callable[[], Params]):
        """`params`: reads the docker's fields, on every Live tick."""
        super().__init__()
        self.actions = actions
        self.params = params
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.toggle = QPushButton("Live")
        self.toggle.setCheckable(True)
        self.toggle.setToolTip(
            "While on, every pause in your painting sends a quick refine of the canvas (or "
            "the selection) and shows it in the 'Live preview' layer on top"
        )
        self.toggle.toggled.connect(self._switch)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(live.LIVE_STRENGTH)
        self.strength.setToolTip("How much live previews may change the canvas")
        self.strength.valueChanged.connect(self._strength)
        row.addWidget(self.toggle)
        row.addWidget(QLabel("Strength"))
        row.addWidget(self.strength)
        lay.addLayout(row)
        row = QHBoxLayout()
        self.seed_button = QPushButton("New seed")
        self.seed_button.setToolTip("Live keeps one seed, so only your painting changes it")
        self.seed_button.clicked.connect(lambda _c=False: actions.new_seed())
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Copy the preview into a new layer below it")
        self.apply_button.clicked.connect(lambda _c=False: actions.apply())
        row.addWidget(self.seed_button)
        row.addWidget(self.apply_button)
        lay.addLayout(row)
        lay.addStretch(1)

    def _switch(self, on: bool) -> None:
        self.actions.switch(on, self.params)
        if on and not self.actions.on:  # refused (no document): say so, untick
            self.toggle.blockSignals(True)
            self.toggle.setChecked(False)
            self.toggle.blockSignals(False)

    def _strength(self, value: float) -> None:
        self.actions.strength = value

    def refresh(self) -> None:
        self.apply_button.setEnabled(self.actions.result is not None)
