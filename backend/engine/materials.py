"""A materials job planned before anything loads: which Marigold model makes which map.

Pure: reads the library's scan (each Marigold folder's model_index.json, through
library/marigold.py) and refuses, with a stable code, a map no installed model makes or a
named model that is missing or makes other maps. One model call makes every map the job
wants from that model (the appearance model predicts albedo and material together), so the
plan groups the maps by model. `offered` is what the welcome says (`materials`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend.library import Kind
from dreamwire.backend.library.marigold import MapSource, entry_sources
from dreamwire.backend.library.scan import KIND_FOLDERS
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.materials import MATERIAL_MAPS

NORMAL = "normal"


@dataclass(frozen=True)
class ModelCall:
    """One Marigold pipeline call and the maps taken from its prediction."""

    model: str  # the folder's library name
    sources: tuple[MapSource, ...]


@dataclass(frozen=True)
class MaterialsPlan:
    calls: tuple[ModelCall, ...]
    maps: tuple[str, ...]  # the job's maps, in the order the result lists them


def _makers(library) -> list[tuple[str, dict[str, MapSource]]]:
    """(name, {map: its source}) of every Marigold folder, in library order."""
    out = []
    for entry in library.entries(Kind.MARIGOLD):
        sources = {s.map: s for s in entry_sources(entry)}
        if sources and all(name != entry.name for name, _ in out):
            out.append((entry.name, sources))
    return out


def offered(library) -> dict[str, list[str]]:
    """{map: the Marigold models that make it}, for welcome.materials."""
    out: dict[str, list[str]] = {}
    for name, sources in _makers(library):
        for m in MATERIAL_MAPS:
            if m in sources:
                out.setdefault(m, []).append(name)
    return out


def plan(job: Job, library) -> MaterialsPlan:
    settings = job.materials
    makers = _makers(library)
    wanted = tuple(settings.maps)
    chosen: dict[str, str] = {}  # map -> model
    for group, named in (
        ([m for m in wanted if m != NORMAL], settings.intrinsics_model),
        ([m for m in wanted if m == NORMAL], settings.normals_model),
    ):
        if group:
            chosen |= _choose(group, named, makers, library)
    by_model = dict(makers)
    calls: dict[str, list[MapSource]] = {}
    for m in wanted:
        calls.setdefault(chosen[m], []).append(by_model[chosen[m]][m])
    return MaterialsPlan(tuple(ModelCall(k, tuple(v)) for k, v in calls.items()), wanted)


def _choose(maps: list[str], named: str, makers, library) -> dict[str, str]:
    """The model for each of `maps`: the named one, which must make them all; else the
    first that makes them all, else per map the first that makes it."""
    if named:
        entry = library.find(Kind.MARIGOLD, named)  # model_not_found, with close names
        sources = dict(makers).get(entry.name, {})
        lacking = [m for m in maps if m not in sources]
        if lacking:
            makes = ", ".join(sources) or "no PBR map"
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"Marigold model {entry.name} makes {makes}, not {', '.join(lacking)}",
            )
        return dict.fromkeys(maps, entry.name)
    for name, sources in makers:
        if all(m in sources for m in maps):
            return dict.fromkeys(maps, name)
    out = {}
    for m in maps:
        name = next((n for n, sources in makers if m in sources), None)
        if name is None:
            raise DreamwireError(ErrorCode.MODEL_NOT_FOUND, _none_installed(m, library))
        out[m] = name
    return out


def _none_installed(map_name: str, library) -> str:
    folder = "marigold-normals-v1-1" if map_name == NORMAL else "marigold-iid-appearance-v1-1"
    where = ", ".join(str(r) for r in library.roots) or "no model roots configured"
    kinds = " or ".join(f"models/{f}" for f in KIND_FOLDERS[Kind.MARIGOLD])
    return (
        f"no Marigold model that makes the {map_name} map is installed (looked in {where}): "
        f"put prs-eth's {folder} diffusers folder in {kinds}"
    )
