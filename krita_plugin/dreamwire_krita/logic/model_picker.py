"""The model picker's rows: the backend's checkpoints grouped by family, each with what it
lacks to load, and a search over them (Krita AI Diffusion #1237: artists with 250+ models).

Only names the backend lists can be picked; a name it does not list (a saved panel's, a
style's) is shown as such, first, so the panel never silently runs another model.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.shared import families as fams

from .library import Library


@dataclass(frozen=True)
class Row:
    text: str  # what the list shows: a model's name, or a family's header
    header: bool = False
    family: str = ""  # the family key
    missing: str = ""  # what the model lacks to load ("" = complete)
    listed: bool = True  # False: not on the backend

    @property
    def usable(self) -> bool:
        return not self.header and self.listed and not self.missing

    @property
    def tip(self) -> str:
        if self.header:
            return ""
        if not self.listed:
            return f"{self.text} is not on the backend: pick another, or add the file"
        return f"Missing: {self.missing}" if self.missing else fams.label(self.family)


def family_label(key: str, welcome=None) -> str:
    """The backend's label for a family (a family newer than this plugin too)."""
    info = welcome.families.get(key) if welcome is not None else None
    return info.family.label if info is not None else fams.label(key)


def rows(lib: Library, keep: str = "", welcome=None) -> list[Row]:
    """Headers ("SDXL (12)") and their models, families in the shared table's order (new
    ones after), models by name; `keep` (the panel's model) first when not listed."""
    out = []
    if keep and keep not in lib.models:
        out.append(Row(keep, family=fams.guess_from_name(keep), listed=False))
    order = {key: i for i, key in enumerate(fams.FAMILIES)}
    groups: dict[str, list[str]] = {}
    for m in lib.models:
        groups.setdefault(lib.families.get(m, fams.DEFAULT.key), []).append(m)
    for key in sorted(groups, key=lambda k: (order.get(k, len(order)), k)):
        names = sorted(groups[key], key=str.casefold)
        out.append(Row(f"{family_label(key, welcome)} ({len(names)})", header=True, family=key))
        out += [Row(m, family=key, missing=lib.missing.get(m, "")) for m in names]
    return out


def search(found: list[Row], text: str, welcome=None) -> list[str]:
    """Model names matching every word of `text` in their name or their family's label
    ("xl turbo", "flux"), in the list's order; names that start with the text first."""
    words = text.casefold().split()
    hits = []
    for row in found:
        if row.header or not row.listed:
            continue
        hay = f"{row.text} {family_label(row.family, welcome)} {row.family}".casefold()
        if all(w in hay for w in words):
            hits.append(row.text)
    first = text.strip().casefold()
    return sorted(hits, key=lambda n: not n.casefold().startswith(first))
