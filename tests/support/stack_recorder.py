"""An observer for the conditioners (backend/conditioning/observer.py) that keeps
what tests look at: the last stack of each kind, and per model call since it was attached,
which units ran."""

from __future__ import annotations

from typing import Any


class StackRecorder:
    def __init__(self) -> None:
        self.stacks: dict[str, Any] = {}
        self.calls: dict[str, list[list[bool]]] = {}

    def attached(self, kind: str, stack: Any) -> None:
        self.stacks[kind] = stack
        self.calls[kind] = []

    def ran(self, kind: str, active: list[bool]) -> None:
        self.calls.setdefault(kind, []).append(list(active))

    def clear(self) -> None:
        self.stacks.clear()
        self.calls.clear()
