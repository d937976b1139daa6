"""Which files make up one SD3 pipeline: the MMDiT, CLIP-L, CLIP-G, T5, the VAE, T5's
tokenizer.

Stability's sd3.5_large.safetensors holds the MMDiT and its VAE; the text encoders come
from the library's text-encoder folders, as ComfyUI's TripleCLIPLoader takes clip_l,
clip_g and t5xxl (Forge: "VAE / Text Encoder"). An "incl_clips" file or a ComfyUI bundle
brings some or all of them itself. Everything missing is named in ONE error
(`model_part_missing`) that says which file to put where. T5 is required: diffusers and
ComfyUI can run SD3 on zeros in its place, but SD3.5 was trained with it and follows the
prompt far worse without.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.flux_identify import is_clip_g, is_clip_l, is_t5
from dreamwire.backend.library.flux_parts import (
    Part,
    is_tiny,
    own_parts,
    pick_part,
    refuse_missing,
    t5_tokenizer_for,
)
from dreamwire.backend.library.sd3_identify import SECTIONS

_ADVICE = {
    "clip_l": "a CLIP-L text encoder: put clip_l.safetensors in models/text_encoders "
    "(ComfyUI: models/clip; Forge: models/text_encoder)",
    "clip_g": "a CLIP-G text encoder: put clip_g.safetensors in models/text_encoders "
    "(ComfyUI: models/clip; Forge: models/text_encoder)",
    "t5": "a T5 text encoder: put t5xxl_fp16.safetensors (or t5xxl_fp8_e4m3fn.safetensors) in "
    "models/text_encoders (Forge: models/text_encoder)",
    "vae": "the SD3 VAE: use the checkpoint as Stability ships it (its VAE inside) or put the "
    "SD3.5 VAE in models/vae with 'sd3' in its name",
}


@dataclass(frozen=True)
class Sd3Sources:
    transformer: Part
    clip_l: Part
    clip_g: Part
    t5: Part
    vae: Part
    t5_tokenizer: Path

    def files(self) -> list[Path]:
        parts = (self.transformer, self.clip_l, self.clip_g, self.t5, self.vae)
        return sorted({p.entry.path for p in parts})


def is_sd3_file(entry: ModelEntry) -> bool:
    return (
        entry.kind == Kind.CHECKPOINT
        and entry.format != Format.DIFFUSERS
        and entry.detail.get("family") == "sd3"
    )


def _sd3_vae(entry: ModelEntry, tiny: bool) -> bool:
    # SD3's VAE has Flux's shapes (16 channels): only its name tells it.
    arch = "tiny-flux-vae" if tiny else "flux-vae"
    return entry.kind == Kind.VAE and entry.arch == arch and "sd3" in entry.name.lower()


def gather(
    entry: ModelEntry,
    library: Iterable[ModelEntry] = (),
    places: Iterable[Path] = (),
) -> Sd3Sources:
    """The files for `entry`'s pipeline: its own parts first, the library's text encoders
    and VAE for the rest, matched in size (tiny with tiny)."""
    library = list(library)
    tiny = is_tiny(entry.arch)
    own = own_parts(entry, SECTIONS)
    encoders = [e for e in library if e.kind == Kind.TEXT_ENCODER and is_tiny(e.arch) == tiny]
    parts = {
        "clip_l": own.get("clip_l") or pick_part(encoders, lambda e: is_clip_l(e.arch)),
        "clip_g": own.get("clip_g") or pick_part(encoders, lambda e: is_clip_g(e.arch)),
        "t5": own.get("t5") or pick_part(encoders, lambda e: is_t5(e.arch)),
        "vae": own.get("vae") or pick_part(library, lambda e: _sd3_vae(e, tiny)),
    }
    missing = [_ADVICE[name] for name, part in parts.items() if part is None]
    tokenizer = t5_tokenizer_for(entry, library, places, "sd3", "tokenizer_3", "SD3.5", missing)
    refuse_missing(f"{entry.name} is an SD3.5 model without everything it needs. SD3.5", missing)
    return Sd3Sources(
        transformer=own["transformer"],
        clip_l=parts["clip_l"],
        clip_g=parts["clip_g"],
        t5=parts["t5"],
        vae=parts["vae"],
        t5_tokenizer=tokenizer,
    )
