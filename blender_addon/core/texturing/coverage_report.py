"""How a projected texture's texels were made: the share covered by the views, filled
from neighbours (texel_fill) or by the UV inpaint pass (uv_inpaint), and left empty. It is
written beside the texture PNG as JSON, for the artist's message and for benchmarks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .texel_fill import TexelState


@dataclass
class CoverageReport:
    texels: int  # texels inside the UV islands; the fractions are of these
    covered: float
    dilated: float
    inpainted: float
    empty: float

    @property
    def filled(self) -> float:
        return self.dilated + self.inpainted

    @classmethod
    def from_states(cls, state: np.ndarray) -> CoverageReport:
        n = int(np.asarray(state).size)
        counts = np.bincount(np.asarray(state, np.int64), minlength=len(TexelState))
        frac = counts / n if n else np.zeros(len(TexelState))
        return cls(
            texels=n,
            covered=float(frac[TexelState.COVERED]),
            dilated=float(frac[TexelState.DILATED]),
            inpainted=float(frac[TexelState.INPAINTED]),
            empty=float(frac[TexelState.EMPTY]),
        )

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "filled": self.filled}, indent=1)

    def summary(self) -> str:
        return (
            f"covered {self.covered:.0%}, filled {self.filled:.0%} (dilated "
            f"{self.dilated:.0%}, inpainted {self.inpainted:.0%}), empty {self.empty:.0%}"
        )
