"""The model's text stage as training sees it: SD1.x's one CLIP encoder, SDXL's two.

SDXL is encoded as kohya's sdxl_train_network.py (and diffusers' SDXL pipeline) encode it:
each encoder's penultimate hidden states, side by side on the last axis, and the second
encoder's projected end-of-text embedding as the pooled embedding the UNet's added
conditioning takes. SD1.x takes its encoder's last hidden states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ENCODERS = ("text_encoder", "text_encoder_2")
TOKENIZERS = ("tokenizer", "tokenizer_2")


@dataclass
class Encoded:
    hidden: torch.Tensor  # the UNet's encoder_hidden_states
    pooled: torch.Tensor | None  # SDXL's text_embeds


@dataclass
class TextStage:
    names: list[str]  # component names, in the model's order
    encoders: list[nn.Module]
    tokenizers: list[Any]

    @classmethod
    def of(cls, components: dict[str, Any]) -> TextStage:
        names = [n for n in ENCODERS if components.get(n) is not None]
        return cls(
            names,
            [components[n] for n in names],
            [components[t] for n, t in zip(ENCODERS, TOKENIZERS, strict=True) if n in names],
        )

    @property
    def two(self) -> bool:
        return len(self.encoders) == 2

    def tokens(self, caption: str) -> list[torch.Tensor]:
        return [
            tok(
                caption,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(te.device)
            for tok, te in zip(self.tokenizers, self.encoders, strict=True)
        ]

    def encode(self, tokens: list[torch.Tensor]) -> Encoded:
        if not self.two:
            return Encoded(self.encoders[0](tokens[0])[0], None)
        hidden, pooled = [], None
        for te, ids in zip(self.encoders, tokens, strict=True):
            out = te(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the last encoder's (CLIPTextModelWithProjection) text_embeds
        return Encoded(torch.cat(hidden, dim=-1), pooled)
