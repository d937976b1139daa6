"""Watching the conditioning at work without reaching into it: an observer the builder of
the conditioners may pass in (a log, a debugger, a test), told when a pass attaches a stack of
units and, at every model call, which units ran (their start/end windows, zero weights).
"""

from __future__ import annotations

from typing import Any, Protocol

# Stack kinds, as an observer is told them; also the kinds of the planned units
# (engine.unit_planning.PlannedUnit.kind), which say which conditioner runs a unit.
CONTROLNET = "controlnet"
T2I_ADAPTER = "t2i_adapter"
IP_ADAPTER = "ip_adapter"
REDUX = "redux"
FLUX_CONTROL = "flux_control"  # a Flux Control LoRA or full Control model (BFL)


class StackObserver(Protocol):
    def attached(self, kind: str, stack: Any) -> None:
        """A stack of `kind` was built (ControlNet and T2I-Adapter: per pass; IP-Adapter:
        per job)."""

    def ran(self, kind: str, active: list[bool]) -> None:
        """One model call of the `kind` stack: per unit, whether it ran."""


class NoObserver:
    def attached(self, kind: str, stack: Any) -> None:
        return None

    def ran(self, kind: str, active: list[bool]) -> None:
        return None
