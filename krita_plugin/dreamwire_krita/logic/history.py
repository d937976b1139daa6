"""Results kept in the docker: re-insert them, or copy their parameters back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from .params import MASKED_CONTENT, Params
from .regions import Plan
from .styles import unmerge_prompt

MAX_ENTRIES = 64


@dataclass
class Entry:
    image: np.ndarray  # RGBA as it was placed (cropped to plan.target)
    seed: int
    infotext: str
    params: Params
    plan: Plan
    mask: np.ndarray | None = None
    layer_name: str = ""


@dataclass
class History:
    entries: list[Entry] = field(default_factory=list)

    def add(self, entry: Entry) -> None:
        self.entries.insert(0, entry)
        del self.entries[MAX_ENTRIES:]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]


def params_from_infotext(text: str, base: Params | None = None) -> Params:
    """The docker's parameters as stored in a result's PNG infotext.

    Fields the infotext does not carry keep their value from `base` (the panel as it is),
    so copying back never blanks what the artist set.
    """
    from dreamwire.shared.infotext import parse_infotext

    info = parse_infotext(text)
    out = Params.from_dict((base or Params()).to_dict())
    # The artist's prompts back out of the merged ones, so the active style's template is
    # not applied twice (logic/styles.py).
    out.prompt = unmerge_prompt(info.prompt, out.style_prompt)
    out.negative = unmerge_prompt(info.negative_prompt, out.style_negative)
    if info.steps is not None:
        out.steps = int(info.steps)
    if info.sampler:
        sched = info.schedule_type
        # Newer A1111 writes "Sampler: DPM++ 2M, Schedule type: Karras"; the docker's
        # list holds the combined name.
        # Flux's "Simple" (Forge's infotext) is the model's own schedule: plain "Euler".
        if sched and sched not in ("Automatic", "Simple") and not info.sampler.endswith(sched):
            out.sampler = f"{info.sampler} {sched}"
        else:
            out.sampler = info.sampler
    if info.cfg_scale is not None:
        out.cfg = float(info.cfg_scale)
    if info.seed is not None:
        out.seed = int(info.seed)
    if info.model:
        out.model = info.model
    # With Hires.fix A1111's "Denoising strength" is the second pass's (so is a two-pass
    # Generate's), not the strength Refine and Inpaint use.
    hires = info.hires_upscale is not None or info.hires_resize is not None
    if info.denoising_strength is not None and not hires:
        out.strength = float(info.denoising_strength)
    # A1111 writes "Masked content" only where it is not "original", and its paste leaves
    # the choice alone when the key is absent; so does this.
    fill = info.extras.get("Masked content")
    if fill in MASKED_CONTENT:
        out.inpaint_fill = fill
    # Forge's name for it; written for models that take one (Flux dev).
    with contextlib.suppress(ValueError):
        out.distilled_cfg = float(info.extras.get("Distilled CFG Scale", out.distilled_cfg))
    # The CFG rescale extension's key and the SLG scale; absent, left alone as above.
    with contextlib.suppress(ValueError):
        out.cfg_rescale = float(info.extras.get("CFG Rescale", out.cfg_rescale))
    with contextlib.suppress(ValueError):
        out.slg_scale = float(info.extras.get("SLG Scale", out.slg_scale))
    return out
