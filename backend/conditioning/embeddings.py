"""Textual-inversion embeddings in A1111's formats, triggered by their name in a prompt.

Files (A1111 modules/textual_inversion/textual_inversion.py, load_from_file):
  .pt/.bin  {'string_to_param': {'*': N x D}, 'string_to_token', 'name', 'step', ...}
            (A1111's own trainer), or a diffusers concept {'<token>': D or N x D};
            read with torch.load(weights_only=True) only: a pickle that needs anything
            beyond tensors and plain containers is refused (MODEL_UNSAFE), never run;
  .safetensors  {'emb_params': N x D}, or SDXL {'clip_l': N x 768, 'clip_g': N x 1280}.

How a name works (A1111's EmbeddingDatabase and EmbeddingsWithFixes): the embedding's
name (its file name without extension) is tokenized; where that token sequence appears in
a tokenized prompt it is replaced by N placeholder tokens, and after the text encoder's
token-embedding layer the N placeholder rows are overwritten with the embedding's N vectors.
For SDXL the first text encoder takes `clip_l`, the second `clip_g`. An embedding whose
width does not fit the model's text encoder is ignored there, as A1111 does (an SD1.5
embedding named in an SDXL prompt stays ordinary text).

Hook for backend/text_encoding.py:
    emb = EmbeddingSet(name_to_path)
    ids, fixes = emb.expand(token_ids, tokenizer, key, width)   # per prompt, before chunking
    with inject(text_encoder, fixes_per_row):                    # offsets include BOS
        text_encoder(chunk_ids)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import files

PLACEHOLDER = 0  # A1111 fills an embedding's slots with token 0 before overwriting them


@dataclass
class Embedding:
    name: str
    path: Path
    vectors: dict[str, torch.Tensor]  # "" for single-encoder files; "clip_l"/"clip_g" for SDXL

    def for_key(self, key: str | None, width: int) -> torch.Tensor | None:
        """N x width vectors for a text encoder ("clip_l", "clip_g" or None), or None if this
        embedding has none that fit."""
        candidates = [self.vectors[key]] if key and key in self.vectors else []
        if "" in self.vectors:
            candidates.append(self.vectors[""])
        for vec in candidates:
            if vec.shape[-1] == width:
                return vec
        return None

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])


def _as_matrix(value: Any, path: Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"embedding {path.name}: vectors are not a tensor"
        )
    value = value.detach().float()
    if value.ndim == 1:
        value = value[None]
    if value.ndim != 2 or value.shape[0] == 0:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"embedding {path.name}: vectors have shape {tuple(value.shape)}",
        )
    return value


def load(path: Path, name: str | None = None) -> Embedding:
    path = Path(path)
    name = name or path.stem
    data = files.load_tensors(path, "embedding")
    if not isinstance(data, dict):
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, f"{path.name} is not an embedding file")
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)
        if not isinstance(params, dict) or len(params) != 1:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"embedding {path.name} has {len(params) if isinstance(params, dict) else '?'} "
                "vectors sets; A1111 embeddings have exactly one",
            )
        vectors = {"": _as_matrix(next(iter(params.values())), path)}
    elif "emb_params" in data:
        vectors = {"": _as_matrix(data["emb_params"], path)}
    elif "clip_l" in data or "clip_g" in data:
        vectors = {k: _as_matrix(data[k], path) for k in ("clip_l", "clip_g") if k in data}
    elif len(data) == 1 and isinstance(next(iter(data.values())), torch.Tensor):
        vectors = {"": _as_matrix(next(iter(data.values())), path)}  # diffusers concept
    else:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{path.name} is neither an A1111 textual-inversion embedding nor a diffusers concept",
        )
    counts = {v.shape[0] for v in vectors.values()}
    if len(counts) != 1:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"embedding {path.name}: clip_l and clip_g differ in length"
        )
    return Embedding(name, path, vectors)


@dataclass
class Fix:
    offset: int  # position in the token sequence the encoder sees
    vectors: torch.Tensor


@dataclass
class EmbeddingSet:
    """The embeddings of a library, loaded on first use, looked up by token sequence."""

    paths: dict[str, Path]
    _loaded: dict[str, Embedding] = field(default_factory=dict)
    _lookup: dict[int, dict[int, list[tuple[list[int], str]]]] = field(default_factory=dict)

    def get(self, name: str) -> Embedding:
        if name not in self._loaded:
            self._loaded[name] = load(self.paths[name], name)
        return self._loaded[name]

    def _ids(self, tokenizer) -> dict[int, list[tuple[list[int], str]]]:
        key = id(tokenizer)
        if key not in self._lookup:
            table: dict[int, list[tuple[list[int], str]]] = {}
            for name in self.paths:
                ids = tokenizer(Path(name).name, add_special_tokens=False)["input_ids"]
                if ids:
                    table.setdefault(ids[0], []).append((list(ids), name))
            for entries in table.values():
                entries.sort(key=lambda e: -len(e[0]))  # longest name first, as A1111
            self._lookup[key] = table
        return self._lookup[key]

    def find_at(self, tokens: list[int], pos: int, tokenizer) -> tuple[str, int] | None:
        """(embedding name, number of prompt tokens its name spans) at tokens[pos], if any."""
        for ids, name in self._ids(tokenizer).get(tokens[pos], ()):
            if tokens[pos : pos + len(ids)] == ids:
                return name, len(ids)
        return None

    def expand(
        self, tokens: list[int], tokenizer, key: str | None, width: int
    ) -> tuple[list[int], list[Fix]]:
        """Replace embedding names in `tokens` (no BOS/EOS) by placeholders; the fixes hold
        offsets into the returned list."""
        out: list[int] = []
        fixes: list[Fix] = []
        pos = 0
        while pos < len(tokens):
            found = self.find_at(tokens, pos, tokenizer)
            if found is not None:
                name, span = found
                vec = self.get(name).for_key(key, width)
                if vec is not None:
                    fixes.append(Fix(len(out), vec))
                    out += [PLACEHOLDER] * vec.shape[0]
                    pos += span
                    continue
            out.append(tokens[pos])
            pos += 1
        return out, fixes


@contextmanager
def inject(text_encoder, fixes_per_row: list[list[Fix]]) -> Iterator[None]:
    """While active, the text encoder's token-embedding output has each row's fixes written
    in (offsets as the encoder sees them, i.e. counting BOS)."""
    module = text_encoder.get_input_embeddings()

    def hook(_module, _inputs, output: torch.Tensor) -> torch.Tensor:
        if not any(fixes_per_row):
            return output
        out = output.clone()
        for row, fixes in enumerate(fixes_per_row):
            for fix in fixes:
                n = min(out.shape[1] - fix.offset, fix.vectors.shape[0])
                if n > 0:
                    out[row, fix.offset : fix.offset + n] = fix.vectors[:n].to(out)
        return out

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def encode_simple(
    prompt: str, tokenizer, text_encoder, embeddings: EmbeddingSet, key: str | None = None
):
    """One 77-token chunk, no weighting: the reference use of the hook (and a test aid)."""
    width = text_encoder.get_input_embeddings().embedding_dim
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids, fixes = embeddings.expand(ids, tokenizer, key, width)
    ids = ids[: tokenizer.model_max_length - 2]
    full = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    full += [pad] * (tokenizer.model_max_length - len(full))
    shifted = [Fix(f.offset + 1, f.vectors) for f in fixes]  # +1: BOS
    with inject(text_encoder, [shifted]):
        out = text_encoder(torch.tensor([full], device=text_encoder.device))
    return out[0], full, shifted
