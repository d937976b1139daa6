"""The seam through which a job's control units are planned: the engine asks, the
conditioning package answers.

A control unit's file (named, or picked for the base model) and its checks against the base
model (the right family, the widths, a Union mode the file has) need the ControlNet folders'
knowledge, which is the conditioning package's; the engine never imports it. So whoever
builds the engine injects a `UnitPlanner` among its conditioners (the CLI and the server:
`conditioning.engine_extensions()`, whose ControlNet conditioner answers for the ControlNet
folders), and `planning.plan` calls it with the checkpoint as the library knows it before
loading (`ModelOutline`: its denoiser's config read from files). The plan then carries the
units typed (`PlannedUnit`), and the unit conditioners run the plan's units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamwire.backend.library import ModelEntry, ModelLibrary
from dreamwire.shared.infotext_controlnet import ControlNetEntry
from dreamwire.shared.job import ControlUnit, Job


@dataclass(frozen=True)
class ModelOutline:
    """The checkpoint a job runs, as the library knows it without loading it: what a
    control unit's file is checked against."""

    name: str
    family: str
    arch: str
    # The denoiser's diffusers config (its UNet or transformer), read from the files the
    # loader builds it from (library.denoiser_config), so it equals the loaded one's.
    denoiser_config: Mapping[str, Any]


@dataclass(frozen=True)
class UnitQuery:
    """What a plan-time question about control units sees: the job as submitted, the model
    library its names resolve in, and the checkpoint unloaded."""

    job: Job
    library: ModelLibrary
    model: ModelOutline


@dataclass(frozen=True)
class PlannedUnit:
    """One control unit resolved at plan time: the file that runs it and which kind of
    conditioner does."""

    index: int  # its place among the units the passes run: the infotext's "ControlNet <index>"
    unit: ControlUnit
    # Which conditioner runs it, in the planner's words ("controlnet", "t2i_adapter",
    # "ip_adapter", "redux"); the engine only groups by it.
    kind: str
    name: str  # the file's model name as the library lists it
    path: Path
    # The file as the planner read it (conditioning's UnitFile: ControlNetInfo, AdapterInfo,
    # IPAdapterInfo, ReduxInfo): opaque here, read by the conditioner of `kind`.
    info: Any
    encoder: Any = None  # the image encoder file it reads (IP-Adapter's CLIP, Redux's SigLIP)
    # A1111's ControlNet extension's "ControlNet <index>" entry for it, with the model picked.
    infotext: ControlNetEntry | None = None
    # A unit whose file is a whole denoiser loaded beside the checkpoint's (a full Flux
    # Control model): its library entry, which the memory plan and admission count.
    denoiser_entry: ModelEntry | None = None

    @property
    def window(self) -> tuple[float, float]:
        """The fraction of the steps it is active in (A1111's guidance start/end)."""
        return (float(self.unit.start), float(self.unit.end))


def by_kind(units: Sequence[PlannedUnit]) -> dict[str, tuple[PlannedUnit, ...]]:
    """{kind: its units in the job's order}, kinds in the order their first unit comes."""
    out: dict[str, list[PlannedUnit]] = {}
    for u in units:
        out.setdefault(u.kind, []).append(u)
    return {kind: tuple(found) for kind, found in out.items()}


class UnitPlanner(ABC):
    """Resolves control units to files for a model, before anything loads."""

    @abstractmethod
    def plan_units(self, query: UnitQuery, units: Sequence[ControlUnit]) -> tuple[PlannedUnit, ...]:
        """`units` (the job's, and any the engine adds) resolved in order and checked
        against `query.model`; DreamwireError with a stable code for any unit that cannot
        run (file not found, made for another family, a Union mode it lacks ...)."""


class ControlImageMaker(ABC):
    """Runs a preprocess job's annotator (the conditioning package's preprocessors), so the
    engine can answer one without importing that package."""

    @abstractmethod
    def control_image(self, job: Job, library: ModelLibrary) -> np.ndarray:
        """The map `job.controls[0]`'s preprocessor makes of the init image, at the init
        image's size (H x W x 3 uint8): what the unit's ControlNet would see.
        DreamwireError PREPROCESSOR_UNAVAILABLE for an unknown preprocessor or missing
        annotator weights, as a generation's unit reports them."""
