"""The CLIP BPE tokenizer that SD1.x and SDXL use, built offline.

A single-file checkpoint carries no tokenizer, and nothing may be downloaded at run time.
The same BPE vocabulary OpenAI's CLIP uses (bpe_simple_vocab_16e6) ships inside the
open_clip_torch package; this module turns it into the vocab.json + merges.txt pair that
transformers' CLIPTokenizer reads, so prompts get exactly the ids real SD models saw.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# OpenAI's tokenizer keeps the first 49152 - 256 - 2 merges of the file (after its header).
MERGE_COUNT = 49152 - 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def find_bpe_file() -> Path:
    """Locate the BPE file without importing open_clip (which needs torchvision)."""
    override = os.environ.get("DREAMWIRE_CLIP_BPE")
    candidates = [Path(override)] if override else []
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / BPE_FILE for p in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        "The CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found: install "
        "open_clip_torch (`pip install --no-deps open_clip_torch`) or set DREAMWIRE_CLIP_BPE "
        "to the file's path.",
    )


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    with gzip.open(find_bpe_file(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : MERGE_COUNT + 1]
    symbols = list(_bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(m.split()) for m in merges]
    symbols += [BOS, EOS]
    vocab = {s: i for i, s in enumerate(symbols)}
    if len(vocab) != VOCAB_SIZE:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"CLIP BPE file gave {len(vocab)} tokens, expected {VOCAB_SIZE}",
        )
    return vocab, merges


def write_clip_tokenizer(folder: Path, pad_token: str = EOS) -> Path:
    """Write a CLIPTokenizer folder. SD1.x and SDXL's first tokenizer pad with the end token;
    SDXL's second tokenizer (OpenCLIP bigG) pads with "!" (id 0), as the real files do."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    config = {
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "tokenizer_class": "CLIPTokenizer",
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True))
    return folder
