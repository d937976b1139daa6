"""ControlNet, LoRA, textual-inversion embeddings and control-image preprocessors.

The engine picks these up through `engine_extensions()` (see backend/engine/hooks.py):
LoRA weights are patched in before a job and restored after it; ControlNet units turn
each pass into the matching diffusers ControlNet pipeline.
"""

from __future__ import annotations


def engine_extensions() -> list:
    try:
        from .extension import ConditioningExtension
    except ModuleNotFoundError as exc:  # not written yet in this checkout
        if exc.name == f"{__name__}.extension":
            return []
        raise
    return [ConditioningExtension()]
