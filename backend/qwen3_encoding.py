"""Prompt text to a Qwen3 family's conditioning (Z-Image, Flux.2 Klein): the LLM's hidden
states over the prompt in Qwen3's chat template (the family spec's `ChatText`).

The templates are ComfyUI's (comfy/text_encoders/z_image.py `llama_template`; Flux.2's adds
the empty thinking block), which is what diffusers' pipelines get from Qwen3's own chat
template with `add_generation_prompt=True` and `enable_thinking` True (Z-Image) or False
(Klein); writing them here means the tokenizer may come from any install (ComfyUI's
qwen25_tokenizer carries Qwen2.5's template, whose default system message would change the
text). The prompt goes in as written: ComfyUI tokenizes these prompts with weights
disabled, so `(word:1.2)` is text to the LLM. `<lora:...>` tags are removed first (they
name networks, not text). Padding to 512, as diffusers' `_encode_prompt` does, keeps the
real rows' values exactly diffusers'.
"""

from __future__ import annotations

import torch

from dreamwire.backend import prompts
from dreamwire.backend.families.spec import ChatText

MAX_LENGTH = 512  # diffusers' ZImagePipeline / Flux2KleinPipeline max_sequence_length


def encode(pipe, text: str, chat: ChatText, max_length: int = MAX_LENGTH) -> torch.Tensor:
    """One prompt's conditioning with `pipe`'s text_encoder and tokenizer: 1 x 512 x D
    (layers concatenated) with `chat.keep_padding`, else tokens x D, the real tokens."""
    clean, _ = prompts.extract_extra_networks(text)
    encoder = pipe.text_encoder
    inputs = pipe.tokenizer(
        [chat.template.format(clean)],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = inputs.input_ids.to(encoder.device)
    mask = inputs.attention_mask.to(encoder.device)
    out = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    hidden = torch.cat([out.hidden_states[k] for k in chat.layers], dim=-1)
    if chat.keep_padding:
        return hidden
    return hidden[0][mask[0].bool()]
