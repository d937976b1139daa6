"""Finding T5's tokenizer (sentencepiece, 32,100 ids) offline, in the artist's own installs.

No PyPI package ships T5's tokenizer the way open_clip_torch ships CLIP's BPE vocabulary
(checked: t5, sentencepiece, transformers, diffusers, open_clip_torch do not), and nothing
may be downloaded at run time. Every program that runs Flux has a copy, so it is read from
where they keep it:

- $DREAMWIRE_T5_TOKENIZER: a folder with tokenizer.json (or spiece.model), or that file;
- a diffusers Flux folder's `tokenizer_2/` (also in a Hugging Face hub cache);
- ComfyUI: `<ComfyUI>/comfy/text_encoders/t5_tokenizer/`;
- Forge: `<Forge>/backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2/` (or schnell);
- the Hugging Face hub cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub) of
  anyone who ran FLUX.1 with diffusers: `models--black-forest-labs--FLUX.1-*/snapshots/*/
  tokenizer_2/`.

The install folders are found by walking up from the model roots and files (a models root
is usually `<ComfyUI>/models` or `<Forge>/models`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from dreamwire.backend.library import tokenizer_search
from dreamwire.shared.errors import DreamwireError, ErrorCode

ENV = "DREAMWIRE_T5_TOKENIZER"
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
PLACES = tokenizer_search.TokenizerPlaces(
    env=ENV,
    subfolder="tokenizer_2",
    installs=(
        Path("comfy/text_encoders/t5_tokenizer"),
        Path("backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2"),
        Path("backend/huggingface/black-forest-labs/FLUX.1-schnell/tokenizer_2"),
    ),
    hub_globs=("models--black-forest-labs--FLUX.1-*/snapshots/*/tokenizer_2",),
    files=tuple((name,) for name in TOKENIZER_FILES),
)


def candidates(
    places: Iterable[Path], diffusers_folders: Iterable[Path] = (), subfolder: str = "tokenizer_2"
) -> list[Path]:
    """Folders that may hold T5's tokenizer, best first (nothing is checked yet). A diffusers
    folder keeps it in `subfolder` (Flux: tokenizer_2, SD3: tokenizer_3)."""
    return tokenizer_search.candidates(_places(subfolder), places, diffusers_folders)


def _places(subfolder: str) -> tokenizer_search.TokenizerPlaces:
    return replace(PLACES, subfolder=subfolder)


def find_t5_tokenizer(
    places: Iterable[Path],
    diffusers_folders: Iterable[Path] = (),
    subfolder: str = "tokenizer_2",
    family: str = "Flux",
) -> Path:
    return tokenizer_search.require(
        _places(subfolder),
        places,
        diffusers_folders,
        f"{family} needs T5's tokenizer and none was found: set DREAMWIRE_T5_TOKENIZER to a folder "
        "holding tokenizer.json (for example a FLUX.1 diffusers folder's tokenizer_2/, or "
        "ComfyUI's comfy/text_encoders/t5_tokenizer/), or keep the model folders inside their "
        "ComfyUI or Forge install so that its copy is found.",
    )


def load_t5_tokenizer(folder: Path):
    """T5's fast tokenizer from tokenizer.json (spiece.model needs sentencepiece)."""
    from transformers import T5TokenizerFast

    if not (folder / "tokenizer.json").is_file():
        try:  # spiece.model alone: transformers converts it with sentencepiece
            import sentencepiece  # noqa: F401
        except ImportError:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{folder} holds T5's spiece.model but no tokenizer.json; reading it needs "
                "the sentencepiece package (pip install sentencepiece protobuf)",
            ) from None
    try:
        return T5TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"the T5 tokenizer in {folder} could not be read: {exc}"
        ) from exc
