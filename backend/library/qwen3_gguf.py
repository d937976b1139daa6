"""Qwen3 text encoders in GGUF (ComfyUI's text_encoders/qwen_3_4b-Q8_0.gguf and the like,
converted by llama.cpp's convert_hf_to_gguf.py, which city96's ComfyUI-GGUF loads): their
tensors carry llama.cpp's names (`blk.N.attn_q`, `blk.N.attn_q_norm`, `token_embd`,
`output_norm`), which the `gguf` package's own table for the qwen3 architecture maps to
transformers' (`model.layers.N.self_attn.q_proj` ...). llama.cpp permutes q/k rows for its
llama architecture only, not for qwen2/qwen3, so the weights go in as stored.

transformers 5.25 loads these files too (`from_pretrained(..., gguf_file=...)`), but it
rebuilds gguf's name table once per module (about 0.1 s each, 425 modules for the tiny
model: tens of seconds) and cannot size Qwen3's heads from the file (it reads no
`qwen3.attention.key_length`); Dreamwire builds the model from the catalog's config as for
the safetensors file, maps the names once and unpacks the weights with diffusers' GGUF
dequantizer, as it does for a GGUF T5.
"""

from __future__ import annotations

MARKER = "blk.0.attn_q_norm.weight"  # Qwen3's per-head q norm (Qwen2.5 has none)
EMBEDDING = "token_embd.weight"


def is_qwen3_gguf(names) -> bool:
    return MARKER in names and EMBEDDING in names


def from_gguf_names(tensors: dict, wanted: list[str], layers: int) -> dict:
    """The file's tensors under the names of `wanted` (a Qwen3Model's state-dict keys, no
    `model.` prefix); those with no counterpart are left out (assign_state names them)."""
    import gguf

    table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, layers)
    out = {}
    for key in wanted:
        module, _, param = key.rpartition(".")
        name = table.get_name("model." + module)
        if name is not None and f"{name}.{param}" in tensors:
            out[key] = tensors[f"{name}.{param}"]
    return out
