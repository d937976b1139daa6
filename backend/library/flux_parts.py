"""Which files make up one Flux pipeline: the transformer, CLIP-L, T5, the VAE, T5's tokenizer.

A ComfyUI all-in-one checkpoint holds all four models; a transformer-only file (BFL single
file, fp8 copy, GGUF) needs the others from the library's text encoder and VAE folders, as
ComfyUI's DualCLIPLoader and Forge's "VAE / Text Encoder" selector take them. Everything
missing is named in ONE error (`model_part_missing`) that says which file to put where.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.flux_identify import SECTIONS, is_clip_l, is_t5
from dreamwire.backend.library.t5_tokenizer import find_t5_tokenizer
from dreamwire.shared.errors import DreamwireError, ErrorCode

_ADVICE = {
    "clip_l": "a CLIP-L text encoder: put clip_l.safetensors in models/text_encoders "
    "(ComfyUI: models/clip; Forge: models/text_encoder)",
    "t5": "a T5 text encoder: put t5xxl_fp16.safetensors or a GGUF T5 in models/text_encoders "
    "(Forge: models/text_encoder)",
    "vae": "the 16-channel Flux VAE: put ae.safetensors in models/vae (Forge: models/VAE)",
}


@dataclass(frozen=True)
class Part:
    """One component's tensors: a file, and where in it the component's keys start."""

    entry: ModelEntry
    prefix: str = ""


@dataclass(frozen=True)
class FluxSources:
    transformer: Part
    clip_l: Part
    t5: Part
    vae: Part
    t5_tokenizer: Path

    def files(self) -> list[Path]:
        return sorted({p.entry.path for p in (self.transformer, self.clip_l, self.t5, self.vae)})


@dataclass(frozen=True)
class OneEncoderSources:
    """A transformer file's pipeline with one text encoder, a VAE and a tokenizer folder
    (Z-Image: Qwen3; Qwen-Image: Qwen2.5-VL)."""

    transformer: Part
    text_encoder: Part
    vae: Part
    tokenizer: Path

    def files(self) -> list[Path]:
        return sorted({p.entry.path for p in (self.transformer, self.text_encoder, self.vae)})


def is_flux_file(entry: ModelEntry) -> bool:
    return (
        entry.kind == Kind.CHECKPOINT
        and entry.format != Format.DIFFUSERS
        and entry.detail.get("family") == "flux"
    )


def is_tiny(arch: str | None) -> bool:
    return bool(arch) and arch.startswith("tiny")


def _preference(entry: ModelEntry) -> tuple:
    # Full-precision safetensors first (what ComfyUI's templates pick), then fp8, then GGUF;
    # the name breaks ties so that the choice is the same on every scan.
    name = entry.path.name.lower()
    return (entry.format == Format.GGUF, "fp8" in name, entry.name)


def pick_part(entries: Iterable[ModelEntry], wanted) -> Part | None:
    found = sorted((e for e in entries if wanted(e)), key=_preference)
    return Part(found[0]) if found else None


def gather(
    entry: ModelEntry,
    library: Iterable[ModelEntry] = (),
    places: Iterable[Path] = (),
) -> FluxSources:
    """The files for `entry`'s pipeline: its own parts first (an all-in-one checkpoint), the
    library's text encoders and VAE for the rest, matched in size (tiny with tiny)."""
    if entry.detail.get("fp4"):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{entry.name} holds bitsandbytes FP4 weights, which Dreamwire does not load; "
            "use its NF4 or a GGUF Q4 file of the same model (e.g. flux1-dev-Q4_0.gguf)",
        )
    library = list(library)
    tiny = is_tiny(entry.arch)
    own = own_parts(entry, SECTIONS)
    encoders = [e for e in library if e.kind == Kind.TEXT_ENCODER and is_tiny(e.arch) == tiny]
    vae_arch = "tiny-flux-vae" if tiny else "flux-vae"
    parts = {
        "clip_l": own.get("clip_l") or pick_part(encoders, lambda e: is_clip_l(e.arch)),
        "t5": own.get("t5") or pick_part(encoders, lambda e: is_t5(e.arch)),
        "vae": own.get("vae")
        or pick_part(library, lambda e: e.kind == Kind.VAE and e.arch == vae_arch),
    }
    missing = [_ADVICE[name] for name, part in parts.items() if part is None]
    tokenizer = t5_tokenizer_for(entry, library, places, "flux", "tokenizer_2", "Flux", missing)
    require_all(entry, "Flux", missing)
    return FluxSources(
        transformer=own["transformer"],
        clip_l=parts["clip_l"],
        t5=parts["t5"],
        vae=parts["vae"],
        t5_tokenizer=tokenizer,
    )


def folders_of(library: Iterable[ModelEntry], fragment: str) -> list[Path]:
    """The library's diffusers pipeline folders whose arch has `fragment` ("flux")."""
    return [
        e.path
        for e in library
        if e.kind == Kind.CHECKPOINT and e.format == Format.DIFFUSERS and fragment in (e.arch or "")
    ]


def find_part(find, places: list[Path], folders: list[Path], missing: list[str]):
    """find(places, folders), or None with its MODEL_PART_MISSING message added to missing."""
    try:
        return find(places, folders)
    except DreamwireError as exc:
        missing.append(exc.message)
        return None


def require_all(entry: ModelEntry, label: str, missing: list[str]) -> None:
    """One MODEL_PART_MISSING naming everything `entry`'s pipeline lacks (nothing: returns)."""
    refuse_missing(
        f"{entry.name} is a {label} transformer without everything it needs. {label}", missing
    )


def own_parts(entry: ModelEntry, sections: dict[str, str]) -> dict[str, Part]:
    """The components inside the entry's own file (ComfyUI's and Forge's checkpoints: all
    of them, or some, e.g. a transformer saved with its VAE), by the reader's `sections`
    (name -> key prefix)."""
    own = {"transformer": Part(entry, entry.detail.get("transformer_prefix", ""))}
    for name in entry.detail.get("sections", ()):
        own[name] = Part(entry, sections[name])
    return own


def t5_tokenizer_for(
    entry: ModelEntry,
    library: list[ModelEntry],
    places: Iterable[Path],
    family: str,
    subfolder: str,
    label: str,
    missing: list[str],
) -> Path | None:
    """T5's tokenizer for `entry` (the installs around it, the library's diffusers folders
    of `family`, which keep it in `subfolder`); None, with the reason added to `missing`,
    where there is none."""
    return find_part(
        lambda where, folders: find_t5_tokenizer(where, folders, subfolder, label),
        [*places, entry.path],
        folders_of(library, family),
        missing,
    )


def refuse_missing(what: str, missing: list[str]) -> None:
    """One MODEL_PART_MISSING naming every part to add ("<what> needs a; and b")."""
    if missing:
        raise DreamwireError(
            ErrorCode.MODEL_PART_MISSING, f"{what} needs " + "; and ".join(missing)
        )
