"""DAAM attention heat maps (Tang et al., castorini/daam): per-word maps of where the UNet's
cross-attention looked at each word of the prompt.

DAAM's method, as its `trace` computes it:

* the layers are every cross-attention (`attn2`) of the UNet's down and up blocks (not the
  mid block), and a map 8x smaller than the latent is skipped;
* each layer's attention probabilities of the conditional batch entries are summed over the
  steps, per head and token, at the layer's own resolution;
* each (layer, head) sum is upsampled bicubically to the latent size and clamped at 0 (the
  clamp undoes bicubic undershoot), and the mean over every (layer, head) is the token map;
* a word's map is the mean of its tokens' maps (every occurrence: DAAM's
  compute_token_merge_indices), shown min-max normalised at the image's size (expand_as).

`Collector` holds the sums as the UNet runs; `word_maps` turns them into greyscale pictures.
The capture recomputes the probabilities beside the layer's own processor, which still
computes the layer's output, so the image is exactly what it is without maps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dreamwire.backend.prompts import extract_extra_networks, parse_prompt_attention
from dreamwire.backend.text_encoding import EncoderUnit, tokenize_line
from dreamwire.shared.result import HeatMap

SKIPPED_FACTOR = 8  # DAAM drops the 8x-downscaled maps (too coarse to place a word)
_WORD = re.compile(r"[^\W_]+")


def map_shape(latent: tuple[int, int], tokens: int) -> tuple[int, int, int] | None:
    """(height, width, downscale factor) of a layer's `tokens` query positions on a latent of
    (height, width): the UNet halves each side, rounding up, per level. None when no level
    matches (not a spatial layer)."""
    h, w = latent
    factor = 1
    while h * w > tokens:
        h, w, factor = math.ceil(h / 2), math.ceil(w / 2), factor * 2
    return (h, w, factor) if h * w == tokens else None


@dataclass
class Collector:
    """The summed attention maps of one pass: per layer name, images x heads x tokens x
    h x w, summed over the steps."""

    images: int
    latent: tuple[int, int]  # the pass's latent height, width
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    @torch.no_grad()
    def capture(self, layer: str, attn, hidden_states, context) -> None:
        if isinstance(context, tuple):  # IP-Adapter: (text, image embeds); text only
            context = context[0]
        batch = hidden_states.shape[0]
        # Classifier-free guidance runs [uncond, cond]; without it every entry is cond.
        if batch == 2 * self.images:
            hidden_states, context = hidden_states[self.images :], context[self.images :]
        elif batch != self.images:
            return
        shape = map_shape(self.latent, hidden_states.shape[1])
        if shape is None or shape[2] == SKIPPED_FACTOR:
            return
        if attn.norm_cross is not None:
            context = attn.norm_cross(context)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        probs = attn.get_attention_scores(query, key, None).float()
        h, w, _ = shape
        heads = probs.shape[0] // self.images
        maps = probs.view(self.images, heads, h * w, -1).transpose(2, 3)
        maps = maps.reshape(self.images, heads, -1, h, w).cpu()
        self.sums[layer] = self.sums[layer] + maps if layer in self.sums else maps


def token_maps(sums: dict[str, torch.Tensor], image: int, latent: tuple[int, int]) -> torch.Tensor:
    """Tokens x latent h x w for one image: every (layer, head) sum upsampled bicubically to
    the latent, clamped at 0, and averaged (DAAM's compute_global_heat_map)."""
    total, count = None, 0
    for maps in sums.values():
        heads, tokens, h, w = maps[image].shape
        up = F.interpolate(
            maps[image].reshape(heads * tokens, 1, h, w), size=latent, mode="bicubic"
        )
        up = up.clamp_(min=0).view(heads, tokens, *latent)
        total = up.sum(0) if total is None else total + up.sum(0)
        count += heads
    if total is None:
        raise ValueError("no cross-attention was captured")
    return total / count


def prompt_text(prompt: str) -> str:
    """The prompt's words as the text encoder reads them: no <lora:...>, no weights."""
    text, _ = extract_extra_networks(prompt)
    return "".join(t for t, w in parse_prompt_attention(text) if not (t == "BREAK" and w == -1))


def word_positions(pipe, prompt: str) -> dict[str, list[int]]:
    """Each word of the prompt (lower case, in order) -> its tokens' positions in the encoded
    sequence (77 per chunk, BOS first), every occurrence: DAAM's merge indices, laid out by
    the engine's own A1111 chunking (text_encoding.tokenize_line)."""
    unit = EncoderUnit(pipe.tokenizer, pipe.text_encoder, None, -1, False)
    chunks, _ = tokenize_line(unit, prompt_text(prompt))
    sequence = [t for c in chunks for t in c.tokens]
    out: dict[str, list[int]] = {}
    for word in _WORD.findall(prompt_text(prompt).lower()):
        if word in out:
            continue
        ids = pipe.tokenizer(word, add_special_tokens=False)["input_ids"]
        hits = [
            start + k
            for start in range(len(sequence) - len(ids) + 1)
            if sequence[start : start + len(ids)] == ids
            for k in range(len(ids))
        ]
        if hits:
            out[word] = hits
    return out


def expand(word_map: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A latent-size word map as an H x W uint8 picture: bicubic to the image's size and
    min-max normalised (DAAM's expand_as, absolute=False)."""
    im = F.interpolate(word_map[None, None].float(), size=size, mode="bicubic")
    im = (im - im.min()) / (im.max() - im.min() + 1e-8)
    return (im[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def word_maps(
    collector: Collector, positions: dict[str, list[int]], image: int, size: tuple[int, int]
) -> list[HeatMap]:
    """One greyscale map per word of the prompt for image `image` of the batch, at `size`
    (height, width)."""
    tokens = token_maps(collector.sums, image, collector.latent)
    return [
        HeatMap(word, expand(tokens[idx].mean(0), size))
        for word, idx in positions.items()
        if max(idx) < tokens.shape[0]
    ]
