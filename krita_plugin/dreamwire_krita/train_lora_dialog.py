"""The "Train LoRA from these layers" dialog: the LoRA's name, its trigger word and the
training steps; it closes only with settings logic/train_lora.py accepts."""

from __future__ import annotations

from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QSpinBox

from dreamwire.shared.lora_training import MAX_TRAIN_STEPS

from .logic import train_lora as tl


class TrainLoraDialog(QDialog):
    def __init__(self, last: tl.TrainRequest, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Train LoRA from these layers")
        self.rank = last.rank
        form = QFormLayout(self)
        note = QLabel(
            "Each selected layer (none selected: each visible top-level paint layer) is one "
            "picture, over the canvas or the selection's bounds; its caption is the trigger "
            "word and the layer's name. The model is the docker's."
        )
        note.setWordWrap(True)
        form.addRow(note)
        self.name = QLineEdit(last.name)
        self.name.setPlaceholderText("mychar (used as <lora:mychar:1>)")
        self.trigger = QLineEdit(last.trigger)
        self.trigger.setPlaceholderText("a word the model does not know yet, e.g. mych4r")
        self.steps = QSpinBox()
        self.steps.setRange(1, MAX_TRAIN_STEPS)
        self.steps.setValue(last.steps)
        form.addRow("LoRA name", self.name)
        form.addRow("Trigger word", self.trigger)
        form.addRow("Steps", self.steps)
        self.feedback = QLabel("")
        self.feedback.setWordWrap(True)
        self.feedback.setStyleSheet("color: #d04040")
        form.addRow(self.feedback)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Train")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.request: tl.TrainRequest | None = None

    def accept(self) -> None:
        req = tl.TrainRequest(self.name.text(), self.trigger.text(), self.steps.value(), self.rank)
        try:
            self.request = tl.check_request(req)
        except tl.TrainError as exc:
            self.feedback.setText(str(exc))  # stays open: the artist fixes the field
            return
        super().accept()


def ask(last: tl.TrainRequest, parent=None) -> tl.TrainRequest | None:
    """The settings the artist confirmed, or None when they cancelled."""
    dialog = TrainLoraDialog(last, parent)
    return dialog.request if dialog.exec_() == QDialog.Accepted else None
