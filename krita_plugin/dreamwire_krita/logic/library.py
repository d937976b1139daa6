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
    # LoRA -> the family keys it fits, for those the backend could tell (an older backend
    # tells none): a LoRA absent here fits every model.
    lora_families: dict[str, tuple[str, ...]] = field(default_factory=dict)
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
        lora_families={k: tuple(v) for k, v in welcome.lora_families.items() if v},
        known=True,
    )


@dataclass(frozen=True)
class LoraChoices:
    names: tuple[str, ...]  # what a LoRA list shows, the model's own first
    fitting: int  # how many of `names` fit the model (or are of unknown family)
    hidden: int  # LoRAs of other families left out (0 with show_all)


def fits(lib: Library, lora: str, family: str) -> bool:
    """Whether `lora` is known to fit a model of `family` (unknown either way: it may)."""
    known = lib.lora_families.get(lora)
    return not family or not known or family in known


def lora_choices(lib: Library, family: str, show_all: bool = False) -> LoraChoices:
    """The LoRAs for a model of `family` ("" = unknown: all of them), by name: those that
    fit it (or whose family the backend did not tell); with `show_all`, the others after
    them."""
    ordered = sorted(lib.loras, key=str.casefold)
    own = tuple(n for n in ordered if fits(lib, n, family))
    other = tuple(n for n in ordered if not fits(lib, n, family))
    if show_all:
        return LoraChoices(own + other, len(own), 0)
    return LoraChoices(own, len(own), len(other))
