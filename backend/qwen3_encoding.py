"""Prompt text to a Qwen3 family's conditioning (Z-Image): the text model's second-to-last
hidden states over the prompt in Qwen3's chat template, one row per real token.

The template is ComfyUI's for Z-Image (comfy/text_encoders/z_image.py `llama_template`),
which is what diffusers' ZImagePipeline gets from Qwen3's own chat template with
`add_generation_prompt=True, enable_thinking=True`; writing it here means the tokenizer
may come from any install (ComfyUI's qwen25_tokenizer carries Qwen2.5's template, whose
default system message would change the text). The prompt goes in as written: ComfyUI
tokenizes Z-Image prompts with weights disabled, so `(word:1.2)` is text to the LLM.
`<lora:...>` tags are removed first (they name networks, not text). Padding to 512 and
then dropping the padded rows is exactly diffusers' `_encode_prompt`.
"""

from __future__ import annotations

import torch

from dreamwire.backend import prompts

TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
MAX_LENGTH = 512  # diffusers' ZImagePipeline max_sequence_length


def encode(pipe, text: str, max_length: int = MAX_LENGTH) -> torch.Tensor:
    """tokens x D: one prompt's hidden states with `pipe`'s text_encoder and tokenizer."""
    clean, _ = prompts.extract_extra_networks(text)
    encoder = pipe.text_encoder
    inputs = pipe.tokenizer(
        [TEMPLATE.format(clean)],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = inputs.input_ids.to(encoder.device)
    mask = inputs.attention_mask.to(encoder.device).bool()
    hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return hidden.hidden_states[-2][0][mask[0]]
