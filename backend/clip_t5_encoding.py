"""Prompt text to a CLIP + T5 family's conditioning (Flux): CLIP-L's pooled vector and T5's
token sequence, from the A1111 prompt language as Forge reads it for Flux.

- Weights (`(word:1.2)`, `[word]`) act on T5's token embeddings the A1111 "Original" way:
  each token's embedding is multiplied by its weight and the sequence's mean restored.
  CLIP-L contributes only its pooled vector, which A1111 and Forge take unweighted.
- BREAK: CLIP's pooled vector comes from the first chunk (before the first BREAK), as
  A1111's SDXL pooled vector does; T5 ends a chunk with its end token at each BREAK and
  goes on in the same sequence (Forge pads each chunk; here the chunks share one sequence
  padded once, so that a prompt without BREAK is exactly what diffusers encodes).
- `<lora:...>` tags are removed first (they name networks, not text).

A prompt with neither weights nor BREAK gives exactly the ids (and so the embeddings) of
diffusers' FluxPipeline.encode_prompt: CLIP padded to 77, T5 to `max_sequence_length`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dreamwire.backend import prompts

CLIP_LENGTH = 77
T5_LENGTH = 512  # diffusers' FluxPipeline default max_sequence_length


@dataclass(frozen=True)
class ClipT5Conditioning:
    sequence: torch.Tensor  # 1 x T x D: T5's hidden states
    pooled: torch.Tensor  # 1 x P: CLIP-L's pooled output


def fragments(text: str) -> list[tuple[str, float]]:
    """(text, weight) runs; ("BREAK", -1) between chunks."""
    clean, _ = prompts.extract_extra_networks(text)
    return [(t, float(w)) for t, w in prompts.parse_prompt_attention(clean)]


def clip_ids(tokenizer, parts: list[tuple[str, float]]) -> tuple[list[int], list[float]]:
    """CLIP's 77 ids of the first chunk (before the first BREAK, as diffusers truncates)
    and each id's weight (1 for the start, end and padding tokens)."""
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in parts:
        if weight == -1 and text == "BREAK":
            break  # the pooled vector is the first chunk's
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        ids += tokens
        weights += [weight] * len(tokens)
    ids = [tokenizer.bos_token_id, *ids[: CLIP_LENGTH - 2], tokenizer.eos_token_id]
    weights = [1.0, *weights[: CLIP_LENGTH - 2], 1.0]
    pad = CLIP_LENGTH - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, weights + [1.0] * pad


def t5_ids(tokenizer, parts: list[tuple[str, float]], length: int):
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in parts:
        if weight == -1 and text == "BREAK":
            ids.append(tokenizer.eos_token_id)
            weights.append(1.0)
            continue
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        ids += tokens
        weights += [weight] * len(tokens)
    ids, weights = ids[: length - 1], weights[: length - 1]
    ids.append(tokenizer.eos_token_id)
    weights.append(1.0)
    pad = length - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, weights + [1.0] * pad


def encode(pipe, text: str, max_sequence_length: int = T5_LENGTH) -> ClipT5Conditioning:
    """One prompt's conditioning with `pipe`'s CLIP (text_encoder) and T5 (text_encoder_2)."""
    parts = fragments(text)
    clip = pipe.text_encoder
    ids = torch.tensor([clip_ids(pipe.tokenizer, parts)[0]], device=clip.device)
    pooled = clip(ids, output_hidden_states=False).pooler_output.to(clip.dtype)
    sequence = t5_sequence(pipe.text_encoder_2, pipe.tokenizer_2, parts, max_sequence_length)
    return ClipT5Conditioning(sequence, pooled)


def t5_sequence(t5, tokenizer, parts: list[tuple[str, float]], length: int) -> torch.Tensor:
    """T5's hidden states for the fragments, padded to `length`, weights applied."""
    ids, weights = t5_ids(tokenizer, parts, length)
    sequence = t5(torch.tensor([ids], device=t5.device), output_hidden_states=False)[0]
    return emphasis(sequence.to(t5.dtype), weights)


def emphasis(sequence: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """A1111's "Original" emphasis: each token's states times its weight, then the
    sequence's mean restored; the sequence as it is when no weight differs from 1."""
    if all(w == 1.0 for w in weights):
        return sequence
    multipliers = torch.tensor(weights, device=sequence.device, dtype=sequence.dtype)
    original_mean = sequence.mean()
    sequence = sequence * multipliers.reshape(1, -1, 1)
    return sequence * (original_mean / sequence.mean())
