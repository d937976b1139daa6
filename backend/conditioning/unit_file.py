"""What every file a control unit can run has in common: its name, where it is, and the
control type its name says. ControlNets (controlnet_files.ControlNetInfo), T2I-Adapters
(t2i_adapter.AdapterInfo) and IP-Adapters (ip_adapter_files.IPAdapterInfo) share the
ControlNet folders, so one unit resolves to any of the three; the info's class says which
conditioner runs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass
class UnitFile(ABC):
    name: str
    path: Path
    type: str | None  # the control type from the name; None when it is chosen per unit
    pickled: bool = False  # read through the restricted unpickler (no header)

    @property
    @abstractmethod
    def family(self) -> str:
        """The model family it was made for, for messages."""
