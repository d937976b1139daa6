"""Conditioning: what changes how a job runs beyond prompt and sampler.

LoRA and LyCORIS weights (patched in before a job, restored exactly after it), textual
inversion embeddings, ControlNet 1.1 units and Union/ProMax, T2I-Adapters, IP-Adapter
(Style/Composition), control-image preprocessors, and the capabilities the backend reports
for them. `engine_extensions()` is what the CLI and the server hand the Engine
(backend/cli/engine_options.py `build_engine`); the engine never imports this package.
"""

from __future__ import annotations


def engine_extensions(observer=None) -> list:
    """The extensions an Engine runs with; `observer` (observer.StackObserver) is told what
    the conditioning attaches and runs."""
    from .extension import ConditioningExtension

    return [ConditioningExtension(observer=observer)]
