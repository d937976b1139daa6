"""Finding Qwen's tokenizer (byte-level BPE, 151,643 ids + specials) offline, for the Qwen3
text encoders of Z-Image (and Flux.2 Klein).

- $DREAMWIRE_QWEN_TOKENIZER: a folder with vocab.json + merges.txt (or tokenizer.json);
- a diffusers Z-Image folder's `tokenizer/` (also in a Hugging Face hub cache);
- ComfyUI: `<ComfyUI>/comfy/text_encoders/qwen25_tokenizer/`, which ComfyUI's Z-Image
  tokenizer reads (comfy/text_encoders/z_image.py: Qwen3 shares Qwen2.5's vocabulary);
- the hub cache of anyone who ran Z-Image Turbo or Qwen3 with diffusers/transformers.

Its chat template is not used: backend/qwen3_encoding.py writes the text itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dreamwire.backend.library import tokenizer_search
from dreamwire.shared.errors import DreamwireError, ErrorCode

ENV = "DREAMWIRE_QWEN_TOKENIZER"
PLACES = tokenizer_search.TokenizerPlaces(
    env=ENV,
    subfolder="tokenizer",
    installs=(Path("comfy/text_encoders/qwen25_tokenizer"),),
    hub_globs=(
        "models--Tongyi-MAI--Z-Image-Turbo/snapshots/*/tokenizer",
        "models--Qwen--Qwen3-4B/snapshots/*",
    ),
    files=(("tokenizer.json",), ("vocab.json", "merges.txt")),
)


def find_qwen_tokenizer(places: Iterable[Path], diffusers_folders: Iterable[Path] = ()) -> Path:
    return tokenizer_search.require(
        PLACES,
        places,
        diffusers_folders,
        "Qwen's tokenizer, and none was found: set DREAMWIRE_QWEN_TOKENIZER to a folder "
        "holding vocab.json and merges.txt (for example a Z-Image diffusers folder's "
        "tokenizer/, or ComfyUI's comfy/text_encoders/qwen25_tokenizer/), or keep the model "
        "folders inside their ComfyUI install so that its copy is found",
    )


def load_qwen_tokenizer(folder: Path):
    from transformers import AutoTokenizer, Qwen2Tokenizer

    try:
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return Qwen2Tokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"the Qwen tokenizer in {folder} could not be read: {exc}"
        ) from exc
