"""Tiny random Flux models in every file format artists download, in the real key layouts.

- `write_bfl_transformer`: flux1-dev.safetensors as Black Forest Labs released it
  (`double_blocks.N.img_attn.qkv.weight`, `img_in`, `guidance_in` for dev ...), optionally
  stored as float8 e4m3fn like the "-fp8" files.
- `write_comfy_checkpoint`: ComfyUI's all-in-one checkpoint: the transformer under
  `model.diffusion_model.`, CLIP-L under `text_encoders.clip_l.transformer.`, T5 under
  `text_encoders.t5xxl.transformer.` and the VAE under `vae.` in BFL's (LDM) VAE names.
- `write_gguf_transformer`: city96's GGUF layout (BFL names, `general.architecture` "flux",
  1-D tensors and the embedders/final layer kept F32, the rest quantized), written with the
  `gguf` package; K-quants (Q4_K_S ...) with backend/tiny/gguf_kquants.py.
- `write_bnb_nf4_checkpoint`: Forge's flux1-dev-bnb-nf4 (-v2) all-in-one, the transformer's
  matrices packed by bitsandbytes.
- `write_clip_l`, `write_t5xxl`, `write_flux_vae`: clip_l.safetensors, t5xxl_fp16.safetensors
  (or the fp8 e4m3fn copy) and ae.safetensors; `write_gguf_t5`: a GGUF T5 encoder in
  llama.cpp's names (`enc.blk.0.attn_q.weight`).

The weights come from the seeded tiny components, so the same call writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.library import flux_layout
from dreamwire.backend.library.ldm_layout import vae_to_ldm
from dreamwire.backend.tiny import gguf_kquants
from dreamwire.backend.tiny.files import save_tensors, state_of

METADATA = {"dreamwire.tiny": "1"}
FP8 = torch.float8_e4m3fn
# city96's converter keeps these weights at full precision (they are small and sensitive).
_GGUF_FULL_PRECISION = (
    "time_in.",
    "txt_in.",
    "vector_in.",
    "img_in.",
    "guidance_in.",
    "final_layer.",
)


def components(guidance: bool = True) -> dict:
    """The tiny Flux pipeline's modules (transformer, vae, text_encoder, text_encoder_2)."""
    from dreamwire.backend.tiny.flux import flux_components

    return flux_components(guidance=guidance)


def _stored(tensors: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict:
    if dtype is None:
        return tensors
    # Like the released fp8 files: matrices in fp8, norms and biases too (they are all
    # stored in the file's one dtype); loading upcasts them.
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def transformer_tensors(transformer) -> dict[str, torch.Tensor]:
    return flux_layout.diffusers_to_bfl(state_of(transformer))


def write_bfl_transformer(transformer, path: Path, dtype: torch.dtype | None = None) -> Path:
    """flux1-dev.safetensors / flux1-schnell.safetensors (dtype=FP8: the fp8 releases)."""
    return save_tensors(_stored(transformer_tensors(transformer), dtype), path, METADATA)


def clip_l_tensors(text_encoder) -> dict[str, torch.Tensor]:
    return flux_layout.clip_l_to_comfy(state_of(text_encoder))


def t5_tensors(text_encoder_2) -> dict[str, torch.Tensor]:
    return flux_layout.t5_to_comfy(state_of(text_encoder_2))


def vae_tensors(vae) -> dict[str, torch.Tensor]:
    return vae_to_ldm(state_of(vae), dict(vae.config), prefix="")


def write_clip_l(text_encoder, path: Path) -> Path:
    return save_tensors(clip_l_tensors(text_encoder), path, METADATA)


def write_t5xxl(text_encoder_2, path: Path, dtype: torch.dtype | None = None) -> Path:
    """t5xxl_fp16.safetensors (dtype=torch.float16) or t5xxl_fp8_e4m3fn (dtype=FP8)."""
    return save_tensors(_stored(t5_tensors(text_encoder_2), dtype), path, METADATA)


def write_scaled_fp8_t5xxl(text_encoder_2, path: Path) -> Path:
    """t5xxl_fp8_e4m3fn_scaled.safetensors as ComfyUI writes it: each matrix in fp8 divided
    by a float32 `scale_weight` (its largest magnitude over fp8's 448), a `scaled_fp8`
    marker, norms kept in fp16."""
    out = {"scaled_fp8": torch.zeros(0, dtype=FP8)}
    for key, value in t5_tensors(text_encoder_2).items():
        if value.ndim == 2 and key.endswith(".weight"):
            scale = value.abs().max().float() / torch.finfo(FP8).max
            out[key] = (value / scale).to(FP8)
            out[key.removesuffix("weight") + "scale_weight"] = scale.reshape(())
        else:
            out[key] = value.to(torch.float16)
    return save_tensors(out, path, METADATA)


def write_flux_vae(vae, path: Path) -> Path:
    """ae.safetensors: the 16-channel VAE with LDM names and no prefix."""
    return save_tensors(vae_tensors(vae), path, METADATA)


def write_comfy_checkpoint(parts: dict, path: Path, dtype: torch.dtype | None = None) -> Path:
    """ComfyUI's all-in-one Flux checkpoint (e.g. flux1-dev-fp8.safetensors with dtype=FP8:
    there the transformer is fp8, the text encoders and VAE keep their precision)."""
    prefix = flux_layout
    tensors = {
        prefix.COMFY_TRANSFORMER + k: v
        for k, v in _stored(transformer_tensors(parts["transformer"]), dtype).items()
    }
    tensors |= {
        prefix.COMFY_CLIP_L + k: v for k, v in clip_l_tensors(parts["text_encoder"]).items()
    }
    tensors |= {prefix.COMFY_T5 + k: v for k, v in t5_tensors(parts["text_encoder_2"]).items()}
    tensors |= {prefix.COMFY_VAE + k: v for k, v in vae_tensors(parts["vae"]).items()}
    return save_tensors(tensors, path, METADATA)


def write_gguf_transformer(transformer, path: Path, qtype: str = "Q8_0") -> Path:
    """A GGUF file as city96's tools/convert.py writes one from a BFL checkpoint. `qtype` is
    a ggml type (Q8_0, Q4_0) or one of llama-quantize's K mixes (Q4_K_S, Q5_K_S, Q6_K,
    Q3_K_S, Q2_K): see `_gguf_type` for which tensors get which type."""
    return write_gguf(transformer_tensors(transformer), path, "flux", qtype)


def write_gguf_t5(text_encoder_2, path: Path, qtype: str = "Q8_0") -> Path:
    """A GGUF T5 encoder in llama.cpp's names (city96's t5-v1_1-xxl-encoder-gguf)."""
    tensors = flux_layout.t5_to_gguf_names(state_of(text_encoder_2))
    return write_gguf(tensors, path, "t5encoder", qtype)


# A K mix keeps some matrices at a higher type, as llama-quantize's mixes do (which ones
# differs per mix); here the modulation layers, whose outputs scale every block's
# activations. K-quants' 256-weight super-blocks must fit the rows; narrower ones fall back.
_GGUF_K_HIGHER = ("_mod.lin.", "modulation.lin.")
_GGUF_K_FALLBACK = "Q8_0"


def _base_type(mix: str) -> str:
    """The ggml type a mix is named after: "Q4_K_S" -> "Q4_K", "Q8_0" -> "Q8_0"."""
    return mix if mix.count("_") == 1 else mix.rsplit("_", 1)[0]


def _gguf_type(key: str, shape: tuple[int, ...], mix: str) -> str:
    if len(shape) == 1 or (any(x in key for x in _GGUF_FULL_PRECISION) and ".weight" in key):
        return "F32"
    base = _base_type(mix)
    if base.endswith("_K") and (
        any(x in key for x in _GGUF_K_HIGHER) or shape[-1] % gguf_kquants.QK_K
    ):
        return _GGUF_K_FALLBACK
    return base


def _quantize(data, qtype: str):
    import gguf

    if qtype in gguf_kquants.BLOCK_BYTES:  # the gguf package reads these but cannot write them
        return gguf_kquants.quantize_k(data, qtype)
    return gguf.quants.quantize(data, getattr(gguf.GGMLQuantizationType, qtype))


def write_gguf(
    tensors: dict,
    path: Path,
    arch: str,
    mix: str,
    full_precision: tuple[str, ...] = (),
    describe=None,
) -> Path:
    """`tensors` in llama.cpp's GGUF container, matrices quantized to `mix` (a ggml type or a
    K mix, `_gguf_type`); vectors, the embedders city96's converter keeps and the
    `full_precision` names stay F32. `describe(writer)` adds the architecture's metadata
    (an LLM's hyperparameters, as llama.cpp's converter writes them)."""
    import gguf
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path=None, arch=arch)
    if describe is not None:
        describe(writer)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # llama.cpp names an unquantized file ALL_F32, the others MOSTLY_<type>.
    writer.add_file_type(gguf.LlamaFileType["ALL_F32" if mix == "F32" else "MOSTLY_" + mix])
    for key, tensor in sorted(tensors.items()):
        data = tensor.detach().to(torch.float32).numpy()
        wanted = "F32" if key in full_precision else _gguf_type(key, data.shape, mix)
        try:
            packed = _quantize(data, wanted)
        except gguf.QuantError:  # a row width the block size does not divide
            wanted = "F32"
            packed = _quantize(data, wanted)
        raw = getattr(gguf.GGMLQuantizationType, wanted)
        writer.add_tensor(key, np.ascontiguousarray(packed), raw_dtype=raw)
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_bnb_nf4_checkpoint(parts: dict, path: Path, nested: bool = True) -> Path:
    """Forge's flux1-dev-bnb-nf4.safetensors (nested=True: the scales double-quantized) or
    -v2 (nested=False): ComfyUI's sections, every matrix of the transformer quantized by
    bitsandbytes' own quantize_4bit from bf16 (blocks of 64) and saved with its packed
    quant state under `<name>.weight.*`, as Forge's 4-bit layers save themselves; T5 in fp8
    e4m3fn, CLIP-L and the VAE as they are."""
    import bitsandbytes.functional as bnb

    tensors = {}
    for key, value in transformer_tensors(parts["transformer"]).items():
        name = flux_layout.COMFY_TRANSFORMER + key
        if value.ndim != 2:
            tensors[name] = value
            continue
        packed, state = bnb.quantize_4bit(
            value.to(torch.bfloat16), blocksize=64, quant_type="nf4", compress_statistics=nested
        )
        tensors[name] = packed
        tensors |= {f"{name}.{k}": v for k, v in state.as_dict(packed=True).items()}
    t5 = _stored(t5_tensors(parts["text_encoder_2"]), FP8)
    tensors |= {flux_layout.COMFY_T5 + k: v for k, v in t5.items()}
    clip = clip_l_tensors(parts["text_encoder"])
    tensors |= {flux_layout.COMFY_CLIP_L + k: v for k, v in clip.items()}
    tensors |= {flux_layout.COMFY_VAE + k: v for k, v in vae_tensors(parts["vae"]).items()}
    return save_tensors(tensors, path, METADATA)


def build_comfy_tree(root: Path, parts: dict | None = None) -> dict[str, Path]:
    """A ComfyUI install with Flux files where its users put them."""
    parts = parts or components()
    models = Path(root) / "models"
    t = parts["transformer"]
    return {
        "unet": write_bfl_transformer(t, models / "unet" / "flux1-dev.safetensors"),
        "diffusion_models": write_bfl_transformer(
            t, models / "diffusion_models" / "flux1-dev-fp8.safetensors", dtype=FP8
        ),
        "gguf_q8": write_gguf_transformer(t, models / "unet" / "flux1-dev-Q8_0.gguf", "Q8_0"),
        "gguf_q4": write_gguf_transformer(t, models / "unet" / "flux1-dev-Q4_0.gguf", "Q4_0"),
        "checkpoint": write_comfy_checkpoint(
            parts, models / "checkpoints" / "flux1-dev-aio.safetensors"
        ),
        "clip_l": write_clip_l(parts["text_encoder"], models / "clip" / "clip_l.safetensors"),
        "t5": write_t5xxl(
            parts["text_encoder_2"],
            models / "text_encoders" / "t5xxl_fp16.safetensors",
            dtype=torch.float16,
        ),
        "t5_gguf": write_gguf_t5(
            parts["text_encoder_2"], models / "text_encoders" / "t5-v1_1-xxl-encoder-Q8_0.gguf"
        ),
        "vae": write_flux_vae(parts["vae"], models / "vae" / "ae.safetensors"),
    }


def write_t5_tokenizer_folder(folder: Path) -> Path:
    """The tiny T5 tokenizer (tokenizer.json and its config) in the layout of ComfyUI's
    comfy/text_encoders/t5_tokenizer/ and a diffusers folder's tokenizer_2/."""
    from dreamwire.backend.tiny.flux import write_t5_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    write_t5_tokenizer(folder)
    return folder
