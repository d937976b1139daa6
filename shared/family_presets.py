"""The panel's sampling settings follow the model's family.

Picking a model of another family switches steps, CFG, sampler and Distilled CFG to that
family's, as Forge's per-architecture UI presets (sd / xl / flux) and Krita AI Diffusion's
styles do: a Flux model does not inherit SD's CFG 7 and DPM++ sampler. What the artist set
is kept per family: another model of the same family changes nothing, and coming back to
a family brings back the values last used with it (its defaults from the backend's
welcome the first time).

Models of one family may have defaults of their own (the welcome's `model_defaults`:
Flux schnell's 4 steps, Kontext's Distilled CFG 2.5; shared.family_support.model_info
puts them in the family a host switches to). Picking such a model moves each value the
artist left at the last model's default to the new model's, and keeps each value the
artist changed, as Krita AI Diffusion's per-architecture presets follow the checkpoint.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .events import Welcome
from .families import DEFAULT, FLUX, ModelFamily
from .families import family as shared_family
from .family_support import model_info

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


def follow(values: Sampling, origin: Sampling, target: Sampling) -> Sampling:
    """`values` moved from one model's defaults (`origin`) to another's (`target`): a
    value still at its origin takes the target's, one the artist changed stays."""
    return Sampling(
        **{
            f.name: getattr(
                target if getattr(values, f.name) == getattr(origin, f.name) else values, f.name
            )
            for f in fields(Sampling)
        }
    )


@dataclass
class FamilyPresets:
    """Which family the panel's values belong to, the values last used with others, and
    per family the model defaults its values were last set from (`origin`)."""

    family: str = DEFAULT.key
    kept: dict[str, Sampling] = field(default_factory=dict)
    origin: dict[str, Sampling] = field(default_factory=dict)

    def switch(self, to: ModelFamily, current: Sampling) -> Sampling | None:
        """The settings for a model of family `to` (its defaults: the model's own, see
        model_info), or None when nothing changes. `current` is kept for the family left;
        within a family the values the artist left at the last model's defaults follow
        this model's (`follow`)."""
        if to.key == self.family:
            values = current
        else:
            self.kept[self.family] = current
            self.family = to.key
            values = self.kept.get(to.key)
        # The defaults the values came from: a record from before `origin` was kept, or a
        # panel never set by a model, started from the family's shared defaults.
        fallback = family_defaults(shared_family(to.key), current)
        origin = self.origin.get(to.key, fallback)
        # A model without a Distilled CFG keeps the origin's, so the next model that takes
        # one still tells the artist's value from the default.
        self.origin[to.key] = family_defaults(to, origin)
        if values is None:
            return family_defaults(to, current)
        new = follow(values, origin, family_defaults(to, values))
        return None if new == current else new

    def pick(self, model: str, welcome: Welcome | None, current: Sampling) -> Sampling | None:
        """The panel's settings once the artist picks `model`: `switch` to its family as
        the welcome describes it, with the model's own defaults; None: nothing changes."""
        return self.switch(model_info(model, welcome).family, current)

    def to_json(self) -> str:
        return json.dumps(
            {
                "family": self.family,
                "kept": {k: asdict(v) for k, v in self.kept.items()},
                "origin": {k: asdict(v) for k, v in self.origin.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FamilyPresets:
        """Tolerant: a damaged or empty record starts afresh (values are only a convenience)."""
        try:
            raw = json.loads(text or "{}")
            kept, origin = (
                {str(k): _sampling(v) for k, v in (raw.get(name) or {}).items()}
                for name in ("kept", "origin")
            )
            return cls(str(raw.get("family") or DEFAULT.key), kept, origin)
        except (ValueError, TypeError, AttributeError, KeyError):
            return cls()


def _sampling(v) -> Sampling:
    return Sampling(int(v["steps"]), float(v["cfg"]), str(v["sampler"]), float(v["distilled_cfg"]))
