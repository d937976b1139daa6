"""The backend's model families: one `FamilySpec` per family, looked up by the family key
the library reads from each checkpoint (dreamwire.catalog.family_of).

Adding a family: its shared entry (dreamwire/shared/families.py, what hosts see), its spec
module here registered in SPECS, its catalog configs and file readers (backend/library), its
tiny model builder (backend/tiny) and tests. Nothing else branches on a family name.
"""

from __future__ import annotations

from typing import Any

from dreamwire.shared.families import FamilyInfo

from .flux import FLUX
from .flux2 import FLUX2
from .qwen_image import QWEN_IMAGE
from .sd3 import SD3
from .spec import MODES, FamilySpec, LoraLineage, PipelineClasses, Reference, TextEncoding
from .stable_diffusion import SD1, SD2, SDXL
from .zimage import ZIMAGE

SPECS: dict[str, FamilySpec] = {
    s.key: s for s in (SD1, SD2, SDXL, FLUX, SD3, QWEN_IMAGE, ZIMAGE, FLUX2)
}


def family_infos() -> dict[str, dict]:
    """The welcome's `families`: every family this backend runs, as the hosts read it."""
    return {
        key: FamilyInfo(
            spec.family,
            # What any of its models runs: a special-purpose variant's modes count (edit:
            # Kontext's); `model_modes` says which model runs which.
            tuple(m for m in MODES if _any_runs(spec, m)),
            spec.supported(),
        ).to_wire()
        for key, spec in SPECS.items()
    }


def _any_runs(spec: FamilySpec, mode: str) -> bool:
    tables = [spec.pipelines, *(spec.variant(name).pipelines for name in spec.variants)]
    return any(t.has(mode) for t in tables)


def spec_for(key: str | None) -> FamilySpec:
    """The spec of a family key; SD1.x for a key the backend has no spec for (an
    unidentified checkpoint is most likely SD1.x, as before families were data)."""
    return SPECS.get(key or "", SD1)


def spec_of_components(components: dict[str, Any]) -> FamilySpec:
    """The family of a loaded model told from its components: of the specs whose every
    weight-holding component is there, the one with the most (SDXL's are SD's plus a second
    text encoder); SD1.x where none fits, as spec_for."""
    present = {name for name, value in components.items() if value is not None}
    fitting = [s for s in SPECS.values() if set(s.model_parts) <= present]
    return max(fitting, key=lambda s: len(s.model_parts), default=SD1)


def label_for_width(width: int) -> str | None:
    """The label of the family whose denoiser cross-attends to `width`-wide text (an add-on
    file's shapes tell it), None for a width no family has."""
    return next((s.label for s in SPECS.values() if s.text_width == width), None)


def lora_lineage(key: str) -> LoraLineage:
    """The lineage of a LoRA family key (LoraFile.family)."""
    return next(s.lora for s in SPECS.values() if s.lora.key == key)


__all__ = [
    "SPECS",
    "FamilySpec",
    "LoraLineage",
    "PipelineClasses",
    "Reference",
    "TextEncoding",
    "family_infos",
    "label_for_width",
    "lora_lineage",
    "spec_for",
    "spec_of_components",
]
