"""Styles: a named checkpoint, LoRAs, prompt template, negative prompt and sampling, picked
with one click (Krita AI Diffusion's styles, which its users know).

A style's prompt template holds `{prompt}` where the artist's prompt goes; a template
without it is appended after a comma, and the style's negative prompt is appended to the
artist's, as Krita AI Diffusion merges them. Its LoRAs travel as `<lora:name:weight>` tags
after the merged prompt (the backend reads A1111's tags). Styles are JSON files (one per
style, see style_store.py); this module reads and checks them, with messages that name the
file and the key, so a broken file is reported and skipped, never fatal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from dreamwire.shared import families as fams
from dreamwire.shared.schedule_types import SCHEDULE_TYPES, split_sampler, with_schedule

from .library import Library
from .lora_tags import format_tag, parse_list

VERSION = 1
PLACEHOLDER = "{prompt}"
MAX_STEPS = 150  # the docker's Steps range
MAX_CFG = 30.0


class StyleError(ValueError):
    """A style file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class StyleLora:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class Style:
    name: str
    # Checkpoints in order of preference: the first the backend lists is used.
    checkpoints: tuple[str, ...] = ()
    # A shipped style names its family: when none of its checkpoints is listed, the first
    # complete model of that family is used instead ("" for a saved style: its own only).
    family: str = ""
    loras: tuple[StyleLora, ...] = ()
    prompt: str = PLACEHOLDER
    negative: str = ""
    sampler: str = "DPM++ 2M"
    schedule: str = "Karras"  # A1111's Schedule type (shared/schedule_types.py)
    steps: int = 20
    cfg: float = 7.0
    distilled_cfg: float | None = None  # Flux dev's; None leaves the panel's as it is
    builtin: bool = False  # shipped with the plugin, not a file of the artist's

    @property
    def sampler_name(self) -> str:
        """The combined name the docker's sampler list and Job.sampler hold."""
        return with_schedule(self.sampler, self.schedule)

    def job_template(self) -> str:
        """The template with the LoRAs' tags after it: what Params.style_prompt holds."""
        if not self.loras:
            return self.prompt
        tags = " ".join(format_tag(x.name, x.weight) for x in self.loras)
        return f"{self.prompt or PLACEHOLDER} {tags}"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "version": VERSION,
            "name": self.name,
            "checkpoints": list(self.checkpoints),
            "loras": [{"name": x.name, "weight": x.weight} for x in self.loras],
            "prompt": self.prompt,
            "negative": self.negative,
            "sampler": self.sampler,
            "schedule": self.schedule,
            "steps": self.steps,
            "cfg": self.cfg,
        }
        if self.family:
            data["family"] = self.family
        if self.distilled_cfg is not None:
            data["distilled_cfg"] = self.distilled_cfg
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def merge_prompt(prompt: str, template: str) -> str:
    """Krita AI Diffusion's rule: `{prompt}` in the template is replaced by the prompt; a
    template without it is appended after a comma; an empty one leaves the prompt alone."""
    if not template:
        return prompt
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, prompt).strip()
    if not prompt:
        return template
    return f"{prompt}, {template}"


def unmerge_prompt(merged: str, template: str) -> str:
    """The artist's prompt back out of a merged one (a result's infotext copied back while
    the same style is active), so the template is not applied twice; unchanged when the
    text was not made with this template."""
    if not template or not merged:
        return merged
    if PLACEHOLDER in template:
        if template.count(PLACEHOLDER) != 1:
            return merged  # the prompt is in it twice: no single way back
        head, tail = template.split(PLACEHOLDER)
        head, tail = head.lstrip(), tail.rstrip()  # merge_prompt strips the ends
        fits = len(merged) >= len(head) + len(tail)
        if fits and merged.startswith(head) and merged.endswith(tail):
            return merged[len(head) : len(merged) - len(tail)]
        return merged
    if merged == template:
        return ""
    suffix = f", {template}"
    return merged[: -len(suffix)] if merged.endswith(suffix) else merged


# -- reading a file ------------------------------------------------------------------------
def _text(data: dict, key: str, where: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise StyleError(f"{where}: {key!r} must be text, not {json.dumps(value)}")
    return value


def _number(data: dict, key: str, where: str, default, low: float, high: float, whole: bool):
    value = data.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (not whole or float(value).is_integer())
    if not ok or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise StyleError(
            f"{where}: {key!r} must be {kind} from {low:g} to {high:g}, not {json.dumps(value)}"
        )
    return int(value) if whole else float(value)


def _loras(data: dict, where: str) -> tuple[StyleLora, ...]:
    raw = data.get("loras", [])
    if not isinstance(raw, list):
        raise StyleError(f'{where}: \'loras\' must be a list of {{"name", "weight"}}')
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: loras[{i}]"
        if not isinstance(item, dict):
            raise StyleError(f'{at} must be {{"name": ..., "weight": ...}}, not {json.dumps(item)}')
        name = _text(item, "name", at, "").strip()
        if not name or any(c in name for c in "<>:"):
            raise StyleError(f"{at}: 'name' must be a LoRA's name (no <, > or :), not {name!r}")
        out.append(StyleLora(name, _number(item, "weight", at, 1.0, -10.0, 10.0, whole=False)))
    return tuple(out)


def from_json(text: str, where: str = "style") -> Style:
    """A style from a file's text; StyleError naming `where` (the file) and the problem."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StyleError(f"{where}: not a JSON file ({exc})") from None
    return from_data(data, where)


def from_data(data: object, where: str = "style") -> Style:
    """A style from a file's parsed JSON; StyleError naming `where` and the problem."""
    if not isinstance(data, dict):
        raise StyleError(f"{where}: a style is a JSON object ({{...}}), not {type(data).__name__}")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise StyleError(f"{where}: made by a newer Dreamwire (version {version!r})")
    name = _text(data, "name", where, "").strip()
    if not name:
        raise StyleError(f"{where}: 'name' is missing or empty")
    checkpoints = data.get("checkpoints", [])
    if isinstance(checkpoints, str):  # one checkpoint, written by hand
        checkpoints = [checkpoints]
    if not isinstance(checkpoints, list) or not all(isinstance(c, str) for c in checkpoints):
        raise StyleError(f"{where}: 'checkpoints' must be a list of checkpoint names")
    schedule = _text(data, "schedule", where, "Automatic")
    known = {s.lower(): s for s in SCHEDULE_TYPES}
    if schedule.lower() not in known:
        raise StyleError(
            f"{where}: 'schedule' must be one of {', '.join(SCHEDULE_TYPES)}, not {schedule!r}"
        )
    sampler, own = split_sampler(_text(data, "sampler", where, "Euler"))
    if not sampler:
        raise StyleError(f"{where}: 'sampler' is empty")
    # A combined name ("DPM++ 2M Karras") and no schedule key: the name's own schedule.
    schedule = known[schedule.lower()] if "schedule" in data else own
    family = _text(data, "family", where, "")
    if family and family not in fams.FAMILIES:
        raise StyleError(
            f"{where}: 'family' must be one of {', '.join(fams.FAMILIES)}, not {family!r}"
        )
    distilled = data.get("distilled_cfg")
    return Style(
        name=name,
        checkpoints=tuple(c.strip() for c in checkpoints if c.strip()),
        family=family,
        loras=_loras(data, where),
        prompt=_text(data, "prompt", where, PLACEHOLDER),
        negative=_text(data, "negative", where, ""),
        sampler=sampler,
        schedule=schedule,
        steps=_number(data, "steps", where, 20, 1, MAX_STEPS, whole=True),
        cfg=_number(data, "cfg", where, 7.0, 0.0, MAX_CFG, whole=False),
        distilled_cfg=None
        if distilled is None
        else _number(data, "distilled_cfg", where, None, 0.0, MAX_CFG, whole=False),
    )


def from_panel(
    name: str,
    model: str,
    sampler: str,
    steps: int,
    cfg: float,
    distilled_cfg: float | None,
    template: str,
    negative: str,
    loras_text: str,
) -> Style:
    """ "Save current as style": the panel's model and sampling with the dialog's name,
    template, negative prompt and LoRAs ("detail:0.6, grain"), checked as a file is."""
    try:
        loras = parse_list(loras_text)
    except ValueError as exc:
        raise StyleError(str(exc)) from None
    sampler, schedule = split_sampler(sampler)
    data = {
        "name": name,
        "checkpoints": [model] if model else [],
        "loras": [{"name": n, "weight": w} for n, w in loras],
        "prompt": template,
        "negative": negative,
        "sampler": sampler,
        "schedule": schedule,
        "steps": steps,
        "cfg": cfg,
        "distilled_cfg": distilled_cfg,
    }
    return from_data(data, f"Style {name.strip()!r}" if name.strip() else "The style")


# -- which checkpoint ---------------------------------------------------------------------
@dataclass(frozen=True)
class Resolved:
    """The model a style runs on here, or None; `note` says what is missing, if anything.
    Before the backend has answered: its first checkpoint, or "" (not known yet)."""

    model: str | None
    note: str = ""

    @property
    def missing(self) -> bool:
        return self.model is None


def resolve(style: Style, lib: Library) -> Resolved:
    """The first of the style's checkpoints the backend lists (case and slashes aside, as
    Krita AI Diffusion compares them); for a shipped style without one, the first complete
    model of its family; else None, and why."""
    if not lib.known:  # nothing to compare with yet: "" = the family's, once known
        return Resolved(style.checkpoints[0] if style.checkpoints else "")
    by_key = {m.replace("\\", "/").lower(): m for m in lib.models}
    for want in style.checkpoints:
        found = by_key.get(want.replace("\\", "/").lower())
        if found is not None:
            return Resolved(found, _lacks(found, lib))
    if style.family:
        fam = [m for m in lib.models if lib.families.get(m) == style.family]
        for m in sorted(fam, key=lambda m: (m in lib.missing, m.lower())):
            return Resolved(m, _lacks(m, lib))
        return Resolved(None, f"no {fams.label(style.family)} model on the backend")
    if not style.checkpoints:
        return Resolved(None, "the style names no checkpoint")
    return Resolved(None, f"checkpoint {style.checkpoints[0]!r} is not on the backend")


def _lacks(model: str, lib: Library) -> str:
    why = lib.missing.get(model, "")
    return f"{model} cannot load: {why}" if why else ""


def missing_loras(style: Style, lib: Library) -> list[str]:
    if not lib.known:
        return []
    have = {x.lower() for x in lib.loras}
    return [x.name for x in style.loras if x.name.lower() not in have]


def describe(style: Style, lib: Library) -> str:
    """The style combo's tooltip: what the style sets, and what is missing."""
    r = resolve(style, lib)
    lines = [
        f"Checkpoint: {r.model or ', '.join(style.checkpoints) or '(none)'}",
        f"Prompt: {style.prompt}",
        f"Negative: {style.negative or '(none)'}",
        f"{style.sampler_name}, {style.steps} steps, CFG {style.cfg:g}",
    ]
    if style.loras:
        lines.append("LoRAs: " + ", ".join(f"{x.name} {x.weight:g}" for x in style.loras))
    if r.note:
        lines.append(f"Missing: {r.note}")
    gone = missing_loras(style, lib)
    if gone:
        lines.append("Missing LoRAs: " + ", ".join(gone))
    return "\n".join(lines)


def label(style: Style, lib: Library) -> str:
    """The style's entry in the combo: its name, marked when it cannot run as saved."""
    r = resolve(style, lib)
    if r.missing:
        return f"{style.name} (checkpoint missing)"
    if r.note or missing_loras(style, lib):
        return f"{style.name} (incomplete)"
    return style.name


# -- shipped styles -------------------------------------------------------------------------
_QUALITY_NEGATIVE = "bad quality, low resolution, blurry, watermark"


def _family_style(fam: fams.ModelFamily, **kw) -> Style:
    """A family's defaults as a style (one line per family the shared table lists)."""
    d = fam.defaults
    sampler, schedule = split_sampler(d.sampler)
    base = dict(
        name=fam.label,
        family=fam.key,
        sampler=sampler,
        schedule=schedule,
        steps=d.steps,
        cfg=d.cfg,
        distilled_cfg=d.distilled_cfg,
        builtin=True,
    )
    return Style(**{**base, **kw})


SHIPPED: tuple[Style, ...] = (
    _family_style(
        fams.SD1,
        name="SD1.5",
        checkpoints=("v1-5-pruned-emaonly", "v1-5-pruned", "dreamshaper_8"),
        prompt="{prompt}, best quality, highres",
        negative=_QUALITY_NEGATIVE,
    ),
    _family_style(
        fams.SDXL,
        checkpoints=("sd_xl_base_1.0", "juggernautXL_v9", "RealVisXL_V4.0"),
        prompt="{prompt}, best quality, highres",
        negative=_QUALITY_NEGATIVE,
    ),
    # CFG 1: no negative pass on Flux, so no negative prompt either.
    _family_style(fams.FLUX, name="Flux", checkpoints=("flux1-dev", "flux1-schnell")),
    _family_style(fams.SD2, negative=_QUALITY_NEGATIVE),
    _family_style(fams.SD3, negative=_QUALITY_NEGATIVE),
    _family_style(fams.QWEN_IMAGE),
    _family_style(fams.ZIMAGE),
    _family_style(fams.FLUX2),
)
