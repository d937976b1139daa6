"""Prompt text to SD3's conditioning: CLIP-L and CLIP-G side by side, then T5's sequence.

What diffusers' StableDiffusion3Pipeline.encode_prompt computes, from the A1111 prompt
language:

- Each CLIP's penultimate hidden states (77 tokens; the first chunk, before the first
  BREAK, as diffusers truncates) are concatenated (768 + 1280 wide), zero-padded to T5's
  width (4096) and followed by T5's 256 tokens; the pooled vector is CLIP-L's and CLIP-G's
  projected outputs side by side (2048).
- Weights (`(word:1.2)`, `[word]`) act on both CLIPs' hidden states and on T5's sequence
  the A1111 "Original" way (each token's states times its weight, the mean restored), as
  Forge weights every encoder of a model; the pooled vectors stay unweighted, as A1111's
  SDXL pooled vector. T5 ends a chunk with its end token at each BREAK (as for Flux).
- Without a T5 (a pipeline built with text_encoder_3=None) T5's part is zeros of CLIP's
  length, as diffusers does.

A prompt with neither weights nor BREAK gives exactly diffusers' embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dreamwire.backend.clip_t5_encoding import clip_ids, emphasis, fragments, t5_sequence

T5_LENGTH = 256  # diffusers' StableDiffusion3Pipeline default max_sequence_length


@dataclass(frozen=True)
class Sd3Conditioning:
    sequence: torch.Tensor  # 1 x (77 + T) x D: CLIP-L|CLIP-G states padded to D, then T5's
    pooled: torch.Tensor  # 1 x (768 + 1280): both CLIPs' projected pooled outputs


def _clip(encoder, tokenizer, parts) -> tuple[torch.Tensor, torch.Tensor]:
    ids, weights = clip_ids(tokenizer, parts)
    out = encoder(torch.tensor([ids], device=encoder.device), output_hidden_states=True)
    states = out.hidden_states[-2].to(encoder.dtype)
    return emphasis(states, weights), out[0].to(encoder.dtype)


def encode(pipe, text: str, max_sequence_length: int = T5_LENGTH) -> Sd3Conditioning:
    """One prompt's conditioning with `pipe`'s CLIP-L, CLIP-G and T5 (text_encoder_3)."""
    parts = fragments(text)
    states_l, pooled_l = _clip(pipe.text_encoder, pipe.tokenizer, parts)
    states_g, pooled_g = _clip(pipe.text_encoder_2, pipe.tokenizer_2, parts)
    clip_states = torch.cat([states_l, states_g], dim=-1)
    if pipe.text_encoder_3 is None:
        width = pipe.transformer.config.joint_attention_dim
        t5 = torch.zeros(
            (1, clip_states.shape[1], width), device=clip_states.device, dtype=clip_states.dtype
        )
    else:
        t5 = t5_sequence(pipe.text_encoder_3, pipe.tokenizer_3, parts, max_sequence_length)
    clip_states = torch.nn.functional.pad(clip_states, (0, t5.shape[-1] - clip_states.shape[-1]))
    sequence = torch.cat([clip_states, t5.to(clip_states.device, clip_states.dtype)], dim=-2)
    return Sd3Conditioning(sequence, torch.cat([pooled_l, pooled_g], dim=-1))
