"""Which checkpoints the merger takes: single files of one family whose spec says A1111's
merge rules hold for its key layout (FamilySpec.checkpoint_merge)."""

from __future__ import annotations

from dreamwire import catalog
from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode

from .entries import ModelEntry


def check_families(entries: list[ModelEntry]) -> str:
    """The family all `entries` share; a refusal naming each otherwise."""
    families = []
    for e in entries:
        family = catalog.family_of(e.arch) if e.arch else ""
        if not family:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{e.name}: its architecture could not be told from the file, so it is not merged",
            )
        spec = spec_for(family)
        if not spec.checkpoint_merge:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{e.name} ({spec.label}): the Checkpoint Merger's rules are for the "
                "SD1.x/SD2.x/SDXL single-file layout, not this family's",
            )
        families.append((e, spec))
    first, first_spec = families[0]
    for e, spec in families[1:]:
        if spec.key != first_spec.key:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"{first.name} ({first_spec.label}) and {e.name} ({spec.label}) are of "
                "different families; only models of one family merge",
            )
    return first_spec.key
