"""The files of a transformer file's pipeline with one text encoder, a VAE and a tokenizer
folder (Z-Image: Qwen3; Qwen-Image: Qwen2.5-VL), gathered from the library the same way
for each family: its own text encoder and VAE arch (tiny with tiny), the tokenizer from the
artist's installs, and everything missing named in ONE error (`model_part_missing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.flux_parts import (
    OneEncoderSources,
    Part,
    find_part,
    folders_of,
    pick_part,
    require_all,
)


@dataclass(frozen=True)
class OneEncoderWants:
    """What one family's pipeline takes: the archs of its text encoder and VAE, the advice
    naming the file to add for each ("text_encoder", "vae"), its label, the arch fragment
    of its diffusers folders (where a tokenizer may be) and its tokenizer finder
    (find(places, folders), raising model_part_missing)."""

    label: str
    encoder_arch: str
    vae_arch: str
    advice: Mapping[str, str]
    folders: str
    find_tokenizer: Callable[[list[Path], list[Path]], Path]


def is_transformer_file(entry: ModelEntry, family: str) -> bool:
    """A single transformer file of `family` (scan's detail), which takes its other parts
    from the other folders; a diffusers folder holds them all."""
    return (
        entry.kind == Kind.CHECKPOINT
        and entry.format != Format.DIFFUSERS
        and entry.detail.get("family") == family
    )


def gather_one_encoder(
    entry: ModelEntry, library: Iterable[ModelEntry], places: Iterable[Path], wants: OneEncoderWants
) -> OneEncoderSources:
    """The files for `entry`'s pipeline from the library."""
    library = list(library)
    text_encoder = pick_part(
        library, lambda e: e.kind == Kind.TEXT_ENCODER and e.arch == wants.encoder_arch
    )
    vae = pick_part(library, lambda e: e.kind == Kind.VAE and e.arch == wants.vae_arch)
    found = (("text_encoder", text_encoder), ("vae", vae))
    missing = [wants.advice[name] for name, part in found if part is None]
    tokenizer = find_part(
        wants.find_tokenizer, [*places, entry.path], folders_of(library, wants.folders), missing
    )
    require_all(entry, wants.label, missing)
    return OneEncoderSources(
        transformer=Part(entry, entry.detail.get("transformer_prefix", "")),
        text_encoder=text_encoder,
        vae=vae,
        tokenizer=tokenizer,
    )
