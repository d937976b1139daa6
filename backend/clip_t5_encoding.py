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


def _fragments(text: str) -> list[tuple[str, float]]:
    """(text, weight) runs; ("BREAK", -1) between chunks."""
    clean, _ = prompts.extract_extra_networks(text)
    return [(t, float(w)) for t, w in prompts.parse_prompt_attention(clean)]


def _clip_ids(tokenizer, parts: list[tuple[str, float]]) -> list[int]:
    ids: list[int] = []
    for text, weight in parts:
        if weight == -1 and text == "BREAK":
            break  # the pooled vector is the first chunk's
        ids += tokenizer(text, add_special_tokens=False).input_ids
    ids = [tokenizer.bos_token_id, *ids[: CLIP_LENGTH - 2], tokenizer.eos_token_id]
    return ids + [tokenizer.pad_token_id] * (CLIP_LENGTH - len(ids))


def _t5_ids(tokenizer, parts: list[tuple[str, float]], length: int):
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
    parts = _fragments(text)
    clip, t5 = pipe.text_encoder, pipe.text_encoder_2
    clip_ids = torch.tensor([_clip_ids(pipe.tokenizer, parts)], device=clip.device)
    pooled = clip(clip_ids, output_hidden_states=False).pooler_output.to(clip.dtype)
    ids, weights = _t5_ids(pipe.tokenizer_2, parts, max_sequence_length)
    sequence = t5(torch.tensor([ids], device=t5.device), output_hidden_states=False)[0]
    sequence = sequence.to(t5.dtype)
    if any(w != 1.0 for w in weights):
        # A1111's "Original" emphasis: weight each token, then restore the mean.
        multipliers = torch.tensor(weights, device=sequence.device, dtype=sequence.dtype)
        original_mean = sequence.mean()
        sequence = sequence * multipliers.reshape(1, -1, 1)
        sequence = sequence * (original_mean / sequence.mean())
    return ClipT5Conditioning(sequence, pooled)
