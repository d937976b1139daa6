"""Prompt text -> CLIP embeddings the way A1111 makes them (FrozenCLIPEmbedderWithCustomWords).

What A1111 does, and this module does the same:

* The prompt is split into weighted fragments (``prompts.parse_prompt_attention``); each
  fragment is tokenized on its own and its tokens carry the fragment's weight.
* Tokens are packed into chunks of 75; each chunk is wrapped as BOS + 75 + EOS = 77, padded
  with EOS. ``BREAK`` starts a new chunk. When a chunk fills up and a comma was among its
  last 20 tokens, the tokens after that comma move to the next chunk (A1111's
  "comma_padding_backtrack", default 20). Where an encoder's pad token is not its end token
  (OpenCLIP bigG, SD2), everything after the first EOS becomes the pad token.
* Each chunk goes through the text encoder on its own; the weights multiply the hidden
  states and the chunk's original mean is restored (A1111's "Original" emphasis, the mean
  taken over the whole batch of texts encoded together). Chunks are concatenated, so a
  prompt of 76..150 tokens gives 154 positions.
* Clip skip N (A1111's "Clip skip", 1 = off): SD1/SD2 take hidden state -N and apply the final
  layer norm (N = 1 is the plain last hidden state). SDXL takes hidden state -(N + 1) from
  both encoders (penultimate by default, no final norm) and concatenates them; the pooled
  vector is encoder 2's projection of the first chunk. That is diffusers' convention
  (diffusers' ``clip_skip`` is N - 1).
* Prompt editing and alternation: every text of a prompt's schedule is encoded in one batch,
  as A1111's get_learned_conditioning does, giving ``[(end_step, embeddings), ...]``.
* Negative and positive are padded to the same length with the empty prompt's encoding
  (A1111's pad_cond_uncond); an empty SDXL negative prompt is all zeros (A1111 and diffusers).
* Composable diffusion (``a cat AND a dog :0.5``): the positive prompt splits into weighted
  subprompts (``prompts.split_subprompts``), each scheduled and encoded on its own (SDXL:
  each with its own pooled vector). At each step, subprompts of different lengths are
  brought to the longest by repeating their last vector (A1111's stack_conds), then padded
  with the empty prompt like any prompt. The negative prompt is never split.

With every weight 1 and at most 75 tokens the result equals diffusers'
``pipeline.encode_prompt`` bit for bit (tests/prompts/test_text_encoding.py).

Textual inversion: pass an ``EmbeddingStore`` (backend/conditioning/embeddings.EmbeddingSet
is one). Where an embedding's name appears in the token stream, its N vectors take N token
slots (never split across chunks) and overwrite the token embeddings there.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from dreamwire.backend.prompts import (
    extract_extra_networks,
    is_composable,
    parse_prompt_attention,
    prompt_at_step,
    prompt_schedule,
    split_subprompts,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode

CHUNK_LENGTH = 75
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default
PLACEHOLDER_TOKEN = 0  # what A1111 writes in an embedding's slots before overwriting them


# -- textual inversion hook ---------------------------------------------------------------


class EmbeddingVectors(Protocol):
    def for_key(self, key: str | None, width: int) -> torch.Tensor | None:
        """N x width vectors for the encoder called `key` ("clip_l", "clip_g"), or None."""


class EmbeddingStore(Protocol):
    """Textual-inversion embeddings, found by their name's token ids in a prompt."""

    def find_at(self, tokens: list[int], pos: int, tokenizer: Any) -> tuple[str, int] | None:
        """(name, number of prompt tokens the name spans) if an embedding's name starts at
        tokens[pos]; the longest name wins, as in A1111."""

    def get(self, name: str) -> EmbeddingVectors: ...


@dataclass
class _Fix:
    offset: int  # position in the 77-token chunk (BOS counted)
    vectors: torch.Tensor
    name: str


@contextmanager
def _inject(text_encoder, fixes_per_row: list[list[_Fix]]):
    """Overwrite token-embedding rows while the encoder runs (A1111's EmbeddingsWithFixes)."""
    if not any(fixes_per_row):
        yield
        return

    def hook(_module, _inputs, output):
        out = output.clone()
        for row, fixes in enumerate(fixes_per_row):
            for fix in fixes:
                n = fix.vectors.shape[0]
                out[row, fix.offset : fix.offset + n] = fix.vectors.to(out)
        return out

    handle = text_encoder.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# -- chunking ------------------------------------------------------------------------------


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[_Fix] = field(default_factory=list)


@dataclass
class EncoderUnit:
    """One CLIP text encoder with its tokenizer and how its output is read."""

    tokenizer: Any
    text_encoder: Any
    key: str | None  # embedding-file key: "clip_l" / "clip_g"
    hidden_index: int  # which hidden state (negative, from the end); -1 = last
    final_norm: bool  # apply the final layer norm to a non-last hidden state
    pooled: bool = False  # SDXL encoder 2: also return the projected pooled vector

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self.id_start = tok.bos_token_id
        self.id_end = tok.eos_token_id
        self.id_pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.comma_token = tok.get_vocab().get(",</w>")
        self.width = self.text_encoder.get_input_embeddings().embedding_dim
        layers = self.text_encoder.config.num_hidden_layers
        if not 1 <= -self.hidden_index <= layers:
            raise DreamwireError(
                ErrorCode.INVALID_JOB,
                f"clip skip reaches hidden state {self.hidden_index}, but this text encoder "
                f"has only {layers} layers",
            )

    def empty_chunk(self) -> PromptChunk:
        return PromptChunk(
            [self.id_start] + [self.id_end] * (CHUNK_LENGTH + 1), [1.0] * (CHUNK_LENGTH + 2)
        )


def tokenize_line(
    unit: EncoderUnit,
    line: str,
    embeddings: EmbeddingStore | None = None,
    comma_backtrack: int = COMMA_BACKTRACK,
) -> tuple[list[PromptChunk], int]:
    """A1111's tokenize_line: the prompt's 77-token chunks and its token count."""
    parsed = parse_prompt_attention(line)
    texts = [text for text, _ in parsed]
    tokenized = unit.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    token_count = 0
    last_comma = -1

    def close(is_last: bool = False) -> None:
        nonlocal chunk, token_count, last_comma
        token_count += len(chunk.tokens) if is_last else CHUNK_LENGTH
        missing = CHUNK_LENGTH - len(chunk.tokens)
        if missing > 0:
            chunk.tokens += [unit.id_end] * missing
            chunk.multipliers += [1.0] * missing
        chunk.tokens = [unit.id_start, *chunk.tokens, unit.id_end]
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
        for fix in chunk.fixes:
            fix.offset += 1  # BOS now precedes the slots
        last_comma = -1
        chunks.append(chunk)
        chunk = PromptChunk()

    for tokens, (text, weight) in zip(tokenized, parsed, strict=True):
        if text == "BREAK" and weight == -1:
            close()
            continue
        pos = 0
        while pos < len(tokens):
            token = tokens[pos]
            if token == unit.comma_token:
                last_comma = len(chunk.tokens)
            elif (
                comma_backtrack
                and len(chunk.tokens) == CHUNK_LENGTH
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= comma_backtrack
            ):
                # Move the words after the last comma to the next chunk, so a phrase is not
                # cut in two.
                # (A1111 leaves a moved embedding's fix behind; it moves with its slots here.)
                cut = last_comma + 1
                moved_tokens, moved_mults = chunk.tokens[cut:], chunk.multipliers[cut:]
                moved_fixes = [f for f in chunk.fixes if f.offset >= cut]
                chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                chunk.fixes = [f for f in chunk.fixes if f.offset < cut]
                close()
                chunk.tokens, chunk.multipliers = moved_tokens, moved_mults
                chunk.fixes = [_Fix(f.offset - cut, f.vectors, f.name) for f in moved_fixes]
            if len(chunk.tokens) == CHUNK_LENGTH:
                close()

            found = embeddings.find_at(tokens, pos, unit.tokenizer) if embeddings else None
            vectors = None
            if found is not None:
                vectors = embeddings.get(found[0]).for_key(unit.key, unit.width)
            if vectors is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                pos += 1
                continue
            name, span = found
            count = int(vectors.shape[0])
            if len(chunk.tokens) + count > CHUNK_LENGTH:
                close()
            chunk.fixes.append(_Fix(len(chunk.tokens), vectors, name))
            chunk.tokens += [PLACEHOLDER_TOKEN] * count
            chunk.multipliers += [weight] * count
            pos += span

    if chunk.tokens or not chunks:
        close(is_last=True)
    return chunks, token_count


# -- encoding ------------------------------------------------------------------------------


@dataclass
class Encoded:
    """Embeddings of one text: (1, 77 * chunks, width), plus SDXL's pooled (1, dim)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    embeddings_used: tuple[str, ...] = ()

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_LENGTH + 2)


class PromptEncoder:
    """Encodes A1111 prompt text with a model's CLIP text encoder(s)."""

    def __init__(
        self,
        units: Sequence[EncoderUnit],
        *,
        embeddings: EmbeddingStore | None = None,
        comma_backtrack: int = COMMA_BACKTRACK,
        zero_empty_negative: bool = False,
    ):
        self.units = list(units)
        self.embeddings = embeddings
        self.comma_backtrack = comma_backtrack
        self.zero_empty_negative = zero_empty_negative
        self._empty: Encoded | None = None

    @classmethod
    def for_pipeline(
        cls, pipe: Any, clip_skip: int = 1, embeddings: EmbeddingStore | None = None
    ) -> PromptEncoder:
        """From a diffusers SD1/SD2 or SDXL pipeline (anything with its text components)."""
        return cls.from_components(
            tokenizer=pipe.tokenizer,
            text_encoder=pipe.text_encoder,
            tokenizer_2=getattr(pipe, "tokenizer_2", None),
            text_encoder_2=getattr(pipe, "text_encoder_2", None),
            clip_skip=clip_skip,
            embeddings=embeddings,
        )

    @classmethod
    def from_components(
        cls,
        tokenizer,
        text_encoder,
        tokenizer_2=None,
        text_encoder_2=None,
        clip_skip: int = 1,
        embeddings: EmbeddingStore | None = None,
    ) -> PromptEncoder:
        if not isinstance(clip_skip, int) or clip_skip < 1:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"clip skip must be >= 1, got {clip_skip!r}"
            )
        if text_encoder_2 is None:
            unit = EncoderUnit(tokenizer, text_encoder, "clip_l", -clip_skip, clip_skip > 1)
            return cls([unit], embeddings=embeddings)
        units = [
            EncoderUnit(tokenizer, text_encoder, "clip_l", -(clip_skip + 1), False),
            EncoderUnit(tokenizer_2, text_encoder_2, "clip_g", -(clip_skip + 1), False, True),
        ]
        return cls(units, embeddings=embeddings, zero_empty_negative=True)

    @property
    def is_sdxl(self) -> bool:
        return any(u.pooled for u in self.units)

    def token_count(self, prompt: str) -> int:
        """Tokens the prompt uses (A1111's counter in the prompt box)."""
        return tokenize_line(self.units[0], prompt, self.embeddings, self.comma_backtrack)[1]

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Encode texts as one batch, A1111's way; each result is (1, 77 * chunks, width)."""
        texts = list(texts)
        if not texts:
            return []
        per_unit: list[torch.Tensor] = []
        pooled: torch.Tensor | None = None
        used: list[set[str]] = [set() for _ in texts]
        for unit in self.units:
            cache: dict[str, list[PromptChunk]] = {}
            batch = []
            for text in texts:
                if text not in cache:
                    cache[text] = tokenize_line(unit, text, self.embeddings, self.comma_backtrack)[
                        0
                    ]
                batch.append(cache[text])
            count = max(len(c) for c in batch)
            zs = []
            for i in range(count):
                row = [chunks[i] if i < len(chunks) else unit.empty_chunk() for chunks in batch]
                for j, chunk in enumerate(row):
                    used[j].update(f.name for f in chunk.fixes)
                z, p = self._encode_chunk(unit, row)
                zs.append(z)
                if unit.pooled and i == 0:
                    pooled = p
            per_unit.append(torch.cat(zs, dim=1))
        embeds = torch.cat(per_unit, dim=-1) if len(per_unit) > 1 else per_unit[0]
        return [
            Encoded(
                embeds[j : j + 1],
                None if pooled is None else pooled[j : j + 1],
                tuple(sorted(used[j])),
            )
            for j in range(len(texts))
        ]

    def _encode_chunk(
        self, unit: EncoderUnit, row: list[PromptChunk]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids = [list(c.tokens) for c in row]
        if unit.id_pad != unit.id_end:
            for tokens in ids:
                first_end = tokens.index(unit.id_end)
                tokens[first_end + 1 :] = [unit.id_pad] * (len(tokens) - first_end - 1)
        encoder = unit.text_encoder
        input_ids = torch.tensor(ids, device=encoder.device)
        with _inject(encoder, [c.fixes for c in row]):
            out = encoder(input_ids, output_hidden_states=True)
        if unit.hidden_index == -1:
            z = out.last_hidden_state
        else:
            z = out.hidden_states[unit.hidden_index]
            if unit.final_norm:
                # transformers 5 flattened CLIPTextModel; 4.x keeps it under .text_model
                z = getattr(encoder, "text_model", encoder).final_layer_norm(z)
        # A1111's "Original" emphasis: weight the positions, then restore the mean. With all
        # weights 1 that is the identity, so it is skipped (A1111 would turn a zero mean into
        # NaN there); a zero mean after weighting leaves the weighted values as they are.
        if any(m != 1.0 for c in row for m in c.multipliers):
            mults = torch.tensor([c.multipliers for c in row], device=z.device, dtype=z.dtype)
            original_mean = z.mean()
            z = z * mults.unsqueeze(-1)
            new_mean = z.mean()
            if new_mean != 0:
                z = z * (original_mean / new_mean)
        pooled = out.text_embeds if unit.pooled else None
        return z, pooled

    def empty(self) -> Encoded:
        """The empty prompt's encoding: one chunk, used to pad shorter conditionings."""
        if self._empty is None:
            self._empty = self.encode([""])[0]
        return self._empty

    def zeros_like(self, like: Encoded) -> Encoded:
        pooled = None if like.pooled is None else torch.zeros_like(like.pooled)
        return Encoded(torch.zeros_like(like.embeds), pooled)

    def encode_schedule(
        self, prompt: str, steps: int, hires_steps: int | None = None
    ) -> list[tuple[int, Encoded]]:
        """``[(end_step, Encoded), ...]`` for prompt editing/alternation, one batch."""
        schedule = prompt_schedule(prompt, steps, hires_steps)
        encoded = self.encode([text for _, text in schedule])
        return [(end, e) for (end, _), e in zip(schedule, encoded, strict=True)]


# -- a job's conditioning ------------------------------------------------------------------


@dataclass
class StepConditioning:
    cond: torch.Tensor  # 1 x T x D (a composable prompt: its first subprompt)
    uncond: torch.Tensor  # 1 x T x D (same T)
    pooled: torch.Tensor | None = None  # SDXL 1 x P
    uncond_pooled: torch.Tensor | None = None
    # Composable prompts only (empty otherwise): every subprompt's 1 x T x D embeddings
    # (SDXL: and pooled vector), in prompt order, with their weights.
    conds: tuple[torch.Tensor, ...] = ()
    pooleds: tuple[torch.Tensor | None, ...] = ()
    weights: tuple[float, ...] = ()


@dataclass
class WeightedSchedule:
    """A composable prompt's part: its schedule (not padded) and its weight."""

    schedule: list[tuple[int, Encoded]]
    weight: float


@dataclass
class ConditioningSchedule:
    """Positive and negative embeddings for each sampling step, padded to one length.

    A composable prompt also has `subprompts`; `cond` is then its first subprompt's schedule,
    and each step's subprompts are padded to one length where they are picked (`at_step`),
    since A1111 pads them among themselves per step."""

    cond: list[tuple[int, Encoded]]
    uncond: list[tuple[int, Encoded]]
    embeddings_used: tuple[str, ...] = ()
    subprompts: list[WeightedSchedule] = field(default_factory=list)
    chunks: int = 0  # composable: the length every step is padded to, in chunks
    filler: Encoded | None = None  # composable: the empty prompt, where padding needs it

    @property
    def composable(self) -> bool:
        return bool(self.subprompts)

    @property
    def changes(self) -> bool:
        scheds = [s.schedule for s in self.subprompts] or [self.cond]
        return any(len(s) > 1 for s in scheds) or len(self.uncond) > 1

    def at_step(self, step: int) -> StepConditioning:
        """Embeddings for sampler step `step`, counted from 0 as A1111's CFG denoiser does:
        the first schedule entry whose end step is not before `step`."""
        u = _pick(self.uncond, step)
        if self.composable:
            return self._composed_at(step, u)
        c = _pick(self.cond, step)
        return StepConditioning(c.embeds, u.embeds, c.pooled, u.pooled)

    def _composed_at(self, step: int, u: Encoded) -> StepConditioning:
        picked = [_pick(s.schedule, step) for s in self.subprompts]
        tokens = max(e.embeds.shape[1] for e in picked)
        conds = []
        for e in picked:
            embeds = _repeat_last(e.embeds, tokens)
            missing = self.chunks - tokens // _CHUNK_TOKENS
            if missing > 0 and self.filler is not None:
                extra = self.filler.embeds.repeat(1, missing, 1).to(embeds)
                embeds = torch.cat([embeds, extra], dim=1)
            conds.append(embeds)
        return StepConditioning(
            conds[0],
            u.embeds,
            picked[0].pooled,
            u.pooled,
            conds=tuple(conds),
            pooleds=tuple(e.pooled for e in picked),
            weights=tuple(s.weight for s in self.subprompts),
        )

    def per_step(self, steps: int) -> list[StepConditioning]:
        """One entry per step 0..steps-1; equal entries are the same object."""
        scheds = [s.schedule for s in self.subprompts] or [self.cond]
        cache: dict[tuple[int, ...], StepConditioning] = {}
        out = []
        for step in range(steps):
            key = tuple(id(_pick(s, step)) for s in [*scheds, self.uncond])
            if key not in cache:
                cache[key] = self.at_step(step)
            out.append(cache[key])
        return out


_CHUNK_TOKENS = CHUNK_LENGTH + 2


def _repeat_last(embeds: torch.Tensor, tokens: int) -> torch.Tensor:
    """Lengthen 1 x T x D embeddings to `tokens` positions by repeating the last one
    (A1111's stack_conds, for subprompts of different lengths)."""
    missing = tokens - embeds.shape[1]
    if missing <= 0:
        return embeds
    return torch.cat([embeds, embeds[:, -1:].repeat(1, missing, 1)], dim=1)


def _pick(entries: list[tuple[int, Encoded]], step: int) -> Encoded:
    for end, encoded in entries:
        if step <= end:
            return encoded
    return entries[0][1]


def _pad(encoder: PromptEncoder, e: Encoded, chunks: int, zeros: bool) -> Encoded:
    if e.chunks >= chunks:
        return e
    filler = encoder.zeros_like(encoder.empty()) if zeros else encoder.empty()
    extra = filler.embeds.repeat(1, chunks - e.chunks, 1).to(e.embeds)
    return Encoded(torch.cat([e.embeds, extra], dim=1), e.pooled, e.embeddings_used)


def encode_conditioning(
    encoder: PromptEncoder,
    prompt: str,
    negative: str,
    steps: int,
    hires_steps: int | None = None,
) -> ConditioningSchedule:
    """A job's conditioning: both prompts scheduled over `steps`, padded to one length.

    Extra-network tags (``<lora:...>``) are removed from the positive prompt, as A1111 does
    (it leaves the negative prompt's text alone), before it is split on ``AND``.
    """
    prompt, _ = extract_extra_networks(prompt)
    parts = split_subprompts(prompt)
    if is_composable(parts):
        return _composable(encoder, parts, negative, steps, hires_steps)
    cond = encoder.encode_schedule(parts[0].text, steps, hires_steps)
    if encoder.zero_empty_negative and negative == "":
        uncond = [(cond[-1][0], encoder.zeros_like(cond[0][1]))]
        zero_pad = True
    else:
        uncond = encoder.encode_schedule(negative, steps, hires_steps)
        zero_pad = False
    chunks = max(e.chunks for _, e in cond + uncond)
    cond = [(end, _pad(encoder, e, chunks, False)) for end, e in cond]
    uncond = [(end, _pad(encoder, e, chunks, zero_pad)) for end, e in uncond]
    used = sorted({n for _, e in cond + uncond for n in e.embeddings_used})
    return ConditioningSchedule(cond, uncond, tuple(used))


def _composable(
    encoder: PromptEncoder,
    parts: list,
    negative: str,
    steps: int,
    hires_steps: int | None,
) -> ConditioningSchedule:
    """A prompt with ``AND`` (or a weight): each distinct subprompt text is scheduled and
    encoded on its own, as A1111's get_learned_conditioning does for its flat list."""
    by_text: dict[str, list[tuple[int, Encoded]]] = {}
    for part in parts:
        if part.text not in by_text:
            by_text[part.text] = encoder.encode_schedule(part.text, steps, hires_steps)
    subprompts = [WeightedSchedule(by_text[p.text], p.weight) for p in parts]
    entries = [e for s in subprompts for _, e in s.schedule]
    if encoder.zero_empty_negative and negative == "":
        last = subprompts[0].schedule
        uncond = [(last[-1][0], encoder.zeros_like(last[0][1]))]
        zero_pad = True
    else:
        uncond = encoder.encode_schedule(negative, steps, hires_steps)
        zero_pad = False
    chunks = max(e.chunks for e in entries + [e for _, e in uncond])
    uncond = [(end, _pad(encoder, e, chunks, zero_pad)) for end, e in uncond]
    filler = encoder.empty() if any(e.chunks < chunks for e in entries) else None
    used = sorted({n for e in entries + [e for _, e in uncond] for n in e.embeddings_used})
    return ConditioningSchedule(
        subprompts[0].schedule, uncond, tuple(used), subprompts, chunks, filler
    )


__all__ = [
    "CHUNK_LENGTH",
    "COMMA_BACKTRACK",
    "ConditioningSchedule",
    "EmbeddingStore",
    "Encoded",
    "EncoderUnit",
    "PromptChunk",
    "PromptEncoder",
    "StepConditioning",
    "WeightedSchedule",
    "encode_conditioning",
    "prompt_at_step",
    "tokenize_line",
]
