"""What the backend lists, as the docker's pickers and styles need it: checkpoints with
their families and missing parts, and LoRAs (from its welcome)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dreamwire.shared import families as fams


@dataclass(frozen=True)
class Library:
    models: tuple[str, ...] = ()
    families: dict[str, str] = field(default_factory=dict)  # checkpoint -> family key
    missing: dict[str, str] = field(default_factory=dict)  # checkpoint -> what it lacks
    loras: tuple[str, ...] = ()
    known: bool = False  # a welcome has arrived (before it, nothing is "missing")


def names(items) -> tuple[str, ...]:
    """Welcome lists hold names, or dicts with a name (older backends)."""
    return tuple(str(x.get("name", x)) if isinstance(x, dict) else str(x) for x in items or [])


def library(welcome) -> Library:
    """The welcome's lists (None before the first: an empty, unknown library)."""
    if welcome is None:
        return Library()
    models = names(welcome.models)
    return Library(
        models=models,
        # The backend's word on each family; a guess from the name where it does not say.
        families={m: welcome.model_families.get(m) or fams.guess_from_name(m) for m in models},
        missing=dict(welcome.model_missing),
        loras=names(welcome.loras),
        known=True,
    )
