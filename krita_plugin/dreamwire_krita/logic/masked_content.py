"""A1111's "Masked content" (fill / original / latent noise / latent nothing), kept per
workspace: a Generate inpaint that needs "latent noise" to replace an object does not
change what another workspace starts from when it masks, and switching back brings each
workspace's own choice back. Stored in Krita's settings as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .params import MASKED_CONTENT
from .workspaces import Workspace

DEFAULT = "original"  # A1111's default, and the Job's


@dataclass
class MaskedContent:
    by_workspace: dict[Workspace, str] = field(default_factory=dict)

    def get(self, ws: Workspace) -> str:
        return self.by_workspace.get(ws, DEFAULT)

    def set(self, ws: Workspace, fill: str) -> bool:
        """Remember `fill` for `ws`; False (and nothing changed) for an unknown name."""
        if fill not in MASKED_CONTENT:
            return False
        self.by_workspace[ws] = fill
        return True

    def to_json(self) -> str:
        return json.dumps({ws.value: fill for ws, fill in self.by_workspace.items()})

    @classmethod
    def from_json(cls, text: str, legacy: str = DEFAULT) -> MaskedContent:
        """The stored choices; a workspace without one (or settings from before they were
        per workspace: `legacy`, the panel's single choice, for Generate) gets a default."""
        out = cls()
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        for ws in Workspace:
            out.set(ws, str(data.get(ws.value, legacy if ws is Workspace.GENERATE else DEFAULT)))
        return out
