"""What the docker's widgets hold, as one typed value (also what history copies back)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from dreamwire.shared.family_presets import DISTILLED_CFG
from dreamwire.shared.job import INPAINT_FILLS

from .queue import fixed_from_stored
from .styles import merge_prompt

# A1111's "Masked content" choices, in its order; its default (and the Job's) is "original".
MASKED_CONTENT = INPAINT_FILLS


@dataclass
class Params:
    prompt: str = ""
    negative: str = ""
    model: str = ""  # "" = the backend's default
    sampler: str = "DPM++ 2M Karras"
    steps: int = 20
    cfg: float = 7.0
    # Forge's Distilled CFG Scale: sent only for a family that takes it (Flux dev), where
    # the docker shows it.
    distilled_cfg: float = DISTILLED_CFG
    # A1111's CFG Rescale φ and SD3.5's skip-layer guidance (shared.panel_job sends them
    # only where the family supports them).
    cfg_rescale: float = 0.0
    slg_scale: float = 0.0
    seed: int = -1
    # Krita AI Diffusion's seed rule (logic/queue.py): on, every job gets `seed` (unless it
    # is -1, "random"); off, every queued job a new random one.
    fixed_seed: bool = True
    # 100% generates new content, less refines what is there (logic/generate_kind.py):
    # Krita AI Diffusion's default, so a first press generates.
    strength: float = 1.0
    batch: int = 1
    inpaint_fill: str = "original"  # A1111 "Masked content", for Inpaint (and its outpainting)
    # Generate regions larger than the model samples well at its native size, then Hires.fix
    # them to the full size (shared.native_size, Krita AI Diffusion's rule).
    two_pass: bool = True
    # Seamless tiling (logic/tiling.py): the docker's toggle; wrap-around mode turns it on
    # for the job whatever this says.
    seamless: bool = False
    # DAAM heat maps per prompt word, added as a layer group of overlays (SD models only).
    attention_maps: bool = False
    # The style picked (logic/styles.py; "" = none), with its prompt template (`{prompt}`
    # and its LoRAs' tags) and negative prompt as of this job: merged into the job's prompts
    # (for_job), while `prompt` stays the artist's own for layer names and the history.
    style: str = ""
    style_prompt: str = ""
    style_negative: str = ""

    def for_job(self) -> Params:
        """The prompts a job sends: the style's template and negative merged in."""
        return replace(
            self,
            prompt=merge_prompt(self.prompt, self.style_prompt),
            negative=merge_prompt(self.negative, self.style_negative),
            style_prompt="",
            style_negative="",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        """Tolerant of missing and unknown keys: stored settings outlive plugin versions."""
        out = cls()
        for f in fields(cls):
            if f.name in data:
                with contextlib.suppress(TypeError, ValueError):
                    setattr(out, f.name, type(getattr(out, f.name))(data[f.name]))
        out.fixed_seed = fixed_from_stored(data)
        if out.inpaint_fill not in MASKED_CONTENT:
            out.inpaint_fill = cls.inpaint_fill  # a name this version does not know
        return out
