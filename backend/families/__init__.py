"""The backend's model families: one `FamilySpec` per family, looked up by the family key
the library reads from each checkpoint (dreamwire.catalog.family_of).

Adding a family: its shared entry (dreamwire/shared/families.py, what hosts see), its spec
module here registered in SPECS, its catalog configs and file readers (backend/library), its
tiny model builder (backend/tiny) and tests. Nothing else branches on a family name.
"""

from __future__ import annotations

from .flux import FLUX
from .spec import FamilySpec, PipelineClasses, TextEncoding
from .stable_diffusion import SD1, SD2, SDXL

SPECS: dict[str, FamilySpec] = {s.key: s for s in (SD1, SD2, SDXL, FLUX)}


def spec_for(key: str | None) -> FamilySpec:
    """The spec of a family key; SD1.x for a key the backend has no spec for (an
    unidentified checkpoint is most likely SD1.x, as before families were data)."""
    return SPECS.get(key or "", SD1)


__all__ = ["SPECS", "FamilySpec", "PipelineClasses", "TextEncoding", "spec_for"]
