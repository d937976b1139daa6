"""Where training puts its files under a model root, for the modules that must tell them
from models: the datasets' folder, and a stopped run's state beside its LoRA."""

from __future__ import annotations

DATA_FOLDER = "training"  # in each model root, beside models/
STATE_SUFFIX = ".train-state"  # NAME.train-state beside NAME.safetensors
PARTIAL_SUFFIX = ".partial"  # a state being written, renamed once whole


def is_state_file(name: str) -> bool:
    """A run's saved state, or one being written (not a model: no rescan, no listing)."""
    return name.endswith(STATE_SUFFIX) or name.endswith(STATE_SUFFIX + PARTIAL_SUFFIX)
