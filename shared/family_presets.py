"""The panel's sampling settings follow the model's family.

Picking a model of another family switches steps, CFG, sampler and Distilled CFG to that
family's, as Forge's per-architecture UI presets (sd / xl / flux) and Krita AI Diffusion's
styles do: a Flux model does not inherit SD's CFG 7 and DPM++ sampler. What the artist set
is kept per family: another model of the same family changes nothing, and coming back to
a family brings back the values last used with it (its defaults from the backend's
welcome the first time).

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .families import DEFAULT, FLUX, ModelFamily

# The panel's Distilled CFG before any family set it (Forge's default for Flux dev).
DISTILLED_CFG = FLUX.defaults.distilled_cfg


@dataclass(frozen=True)
class Sampling:
    """The panel settings a family switch sets."""

    steps: int
    cfg: float
    sampler: str
    distilled_cfg: float  # the panel's value; it travels only for families that take one


def family_defaults(family: ModelFamily, current: Sampling) -> Sampling:
    """The family's defaults; a family without a Distilled CFG leaves the panel's as is
    (hidden, it does not travel)."""
    d = family.defaults
    distilled = current.distilled_cfg if d.distilled_cfg is None else d.distilled_cfg
    return Sampling(d.steps, d.cfg, d.sampler, distilled)


@dataclass
class FamilyPresets:
    """Which family the panel's values belong to, and the values last used with others."""

    family: str = DEFAULT.key
    kept: dict[str, Sampling] = field(default_factory=dict)

    def switch(self, to: ModelFamily, current: Sampling) -> Sampling | None:
        """The settings for a model of family `to`, or None when it is the panel's family
        already (the artist's values stay). `current` is kept for the family left."""
        if to.key == self.family:
            return None
        self.kept[self.family] = current
        self.family = to.key
        return self.kept.get(to.key) or family_defaults(to, current)

    def to_json(self) -> str:
        return json.dumps(
            {"family": self.family, "kept": {k: asdict(v) for k, v in self.kept.items()}}
        )

    @classmethod
    def from_json(cls, text: str) -> FamilyPresets:
        """Tolerant: a damaged or empty record starts afresh (values are only a convenience)."""
        try:
            raw = json.loads(text or "{}")
            kept = {
                str(k): Sampling(
                    int(v["steps"]), float(v["cfg"]), str(v["sampler"]), float(v["distilled_cfg"])
                )
                for k, v in (raw.get("kept") or {}).items()
            }
            return cls(str(raw.get("family") or DEFAULT.key), kept)
        except (ValueError, TypeError, AttributeError, KeyError):
            return cls()
