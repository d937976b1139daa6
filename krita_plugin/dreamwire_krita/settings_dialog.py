"""The settings dialog: the backend's address and keys, the command that starts a local
backend, and "Test connection"; it closes only with settings that can be used."""

from __future__ import annotations

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPushButton

from .logic import settings as settings_mod
from .logic.probe import ConnectionProbe

POLL_MS = 50  # how often a running probe is asked for its answer


class SettingsDialog(QDialog):
    def __init__(self, settings: settings_mod.Settings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Dreamwire settings")
        form = QFormLayout(self)
        self.address = QLineEdit(settings.address)
        self.server_key = QLineEdit(settings.server_key)
        self.client_key = QLineEdit(settings.client_key)
        self.client_key.setEchoMode(QLineEdit.Password)
        self.command = QLineEdit(settings.backend_command)
        self.command.setPlaceholderText(
            "e.g. dreamwire serve --models ~/sd --bind tcp://127.0.0.1:5790"
        )
        form.addRow("Backend address", self.address)
        form.addRow("Backend public key", self.server_key)
        form.addRow("Your secret key", self.client_key)
        form.addRow("Start local backend", self.command)
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip("Ask the backend at this address (and keys) to answer")
        self.test_button.clicked.connect(self.test_connection)
        form.addRow(self.test_button)
        self.feedback = QLabel("")
        self.feedback.setWordWrap(True)
        form.addRow(self.feedback)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.base = settings
        self.probe: ConnectionProbe | None = None
        self.probe_timer = QTimer(self)
        self.probe_timer.timeout.connect(self._probe_tick)

    def _say(self, text: str, ok: bool) -> None:
        self.feedback.setStyleSheet("" if ok else "color: #d04040")
        self.feedback.setText(text)

    def accept(self) -> None:
        """Closes only with settings that can be used: the reason shows otherwise."""
        problems = self.value().problems()
        if problems:
            self._say("; ".join(problems), ok=False)
            return
        self._stop_probe()
        super().accept()

    def reject(self) -> None:
        self._stop_probe()
        super().reject()

    def test_connection(self) -> None:
        from dreamwire.shared.client import Client

        self._stop_probe()
        v = self.value()
        self.probe = ConnectionProbe(
            v.address,
            v.server_key,
            v.client_key,
            lambda a, s, c: Client(a, server_public_key=s, client_secret_key=c),
        )
        self._say(f"Asking {v.address}…", ok=True)
        self.test_button.setEnabled(False)
        self.probe_timer.start(POLL_MS)
        self._probe_tick()

    def _probe_tick(self) -> None:
        result = self.probe.tick() if self.probe is not None else None
        if result is not None:
            self._say(result.message, result.ok)
            self._stop_probe()

    def _stop_probe(self) -> None:
        self.probe_timer.stop()
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        self.test_button.setEnabled(True)

    def value(self) -> settings_mod.Settings:
        s = settings_mod.Settings(**vars(self.base))
        s.address = self.address.text().strip()
        s.server_key = self.server_key.text().strip()
        s.client_key = self.client_key.text().strip()
        s.backend_command = self.command.text().strip()
        return s
