"""The style editor's rules (style_editor.py is its dialog): a new style's and a copy's
name, the editor's fields checked into a Style as a style file is, and saving or deleting
through the store without ever changing a shipped style.

A shipped style is edited as Krita AI Diffusion's built-in styles are: saving it writes the
artist's file under its name, which takes its place in the list (style_store.py); deleting
that file brings the shipped one back. A name another style has is refused, so a new or
renamed style never hides a shipped one by accident.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from .style_store import StyleStore
from .styles import Style, StyleError, from_data

NEW_NAME = "New style"


@dataclass(frozen=True)
class Draft:
    """The editor's fields as the artist left them."""

    name: str
    checkpoints: tuple[str, ...]  # in order of preference
    loras: tuple[tuple[str, float], ...]  # (name, weight)
    prompt: str
    negative: str
    sampler: str
    schedule: str
    steps: int
    cfg: float


def draft_of(style: Style) -> Draft:
    return Draft(
        name=style.name,
        checkpoints=style.checkpoints,
        loras=tuple((x.name, x.weight) for x in style.loras),
        prompt=style.prompt,
        negative=style.negative,
        sampler=style.sampler,
        schedule=style.schedule,
        steps=style.steps,
        cfg=style.cfg,
    )


def _free(taken: Collection[str], first: str) -> str:
    names = {t.casefold() for t in taken}
    if first.casefold() not in names:
        return first
    n = 2
    while f"{first} {n}".casefold() in names:
        n += 1
    return f"{first} {n}"


def new_name(taken: Collection[str]) -> str:
    """ "New style", else "New style 2", 3 ...: a name no style has."""
    return _free(taken, NEW_NAME)


def copy_name(name: str, taken: Collection[str]) -> str:
    """ "Ink copy", else "Ink copy 2" ...; a copy of a copy counts on ("Ink copy 3")."""
    base = name.strip()
    stem, sep, number = base.rpartition(" copy ")
    if sep and number.isdigit():
        base = stem
    elif base.endswith(" copy"):
        base = base[: -len(" copy")]
    return _free(taken, f"{base} copy")


def duplicate(style: Style, taken: Collection[str]) -> Style:
    """The style under a free name, the artist's (a shipped one's family fallback kept)."""
    return replace(style, name=copy_name(style.name, taken), builtin=False)


def new_style(model: str, taken: Collection[str], like: Style | None = None) -> Style:
    """A fresh style on `model` (the panel's), with `like`'s sampling when given (the
    style picked now), else the defaults."""
    base = Style(name=new_name(taken), checkpoints=(model,) if model else ())
    if like is None:
        return base
    keep = ("sampler", "schedule", "steps", "cfg", "distilled_cfg")
    return replace(base, **{k: getattr(like, k) for k in keep})


def _same(a: str, b: str) -> bool:
    return a.replace("\\", "/").casefold() == b.replace("\\", "/").casefold()


def build(draft: Draft, base: Style | None, taken: Collection[str]) -> Style:
    """The style the fields describe, checked as a file is (styles.from_data); StyleError
    saying what to change. `base` is the style being edited (None: a new one): it may keep
    its own name; `taken` are the names of all styles."""
    name = draft.name.strip()
    if not name:
        raise StyleError("Give the style a name.")
    own = base.name.casefold() if base is not None else None
    if name.casefold() != own and name.casefold() in {t.casefold() for t in taken}:
        raise StyleError(f"A style named {name!r} exists already: pick another name.")
    checkpoints: list[str] = []
    for c in (c.strip() for c in draft.checkpoints):
        if c and not any(_same(c, x) for x in checkpoints):
            checkpoints.append(c)
    family = base.family if base is not None else ""
    if not checkpoints and not family:
        raise StyleError(f"Style {name!r}: add the checkpoint it runs on.")
    seen: set[str] = set()
    for lora, _w in draft.loras:
        if lora.strip().casefold() in seen:
            raise StyleError(f"Style {name!r}: LoRA {lora.strip()!r} is in the list twice.")
        seen.add(lora.strip().casefold())
    data = {
        "name": name,
        "checkpoints": checkpoints,
        "family": family,
        "loras": [{"name": n.strip(), "weight": w} for n, w in draft.loras],
        "prompt": draft.prompt,
        "negative": draft.negative,
        "sampler": draft.sampler,
        "schedule": draft.schedule,
        "steps": draft.steps,
        "cfg": draft.cfg,
        "distilled_cfg": base.distilled_cfg if base is not None else None,
    }
    return from_data(data, f"Style {name!r}")


def save(store: StyleStore, style: Style, base: Style | None) -> Path:
    """Write `style`; a renamed style of the artist's loses its old file (a shipped one
    is never touched: its copy is a file of its own). StyleError saying why not."""
    path = store.save(style)
    if base is not None and base.name != style.name and base.name in store.paths:
        store.delete(base.name)
    return path


def deletable(store: StyleStore, name: str) -> bool:
    """Only the artist's files are deleted; a shipped style stays."""
    return name in store.paths


def delete(store: StyleStore, name: str, shipped: Collection[str]) -> str:
    """Delete the artist's style `name`; what the artist is told (a shipped style of the
    same name is back in its place). StyleError for a shipped style or a failed delete."""
    store.delete(name)
    if name in shipped:
        return f"Deleted your copy of {name!r}: the shipped style is back."
    return f"Deleted style {name!r}."
