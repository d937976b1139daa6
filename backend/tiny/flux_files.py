"""Tiny random Flux models in every file format artists download, in the real key layouts.

- `write_bfl_transformer`: flux1-dev.safetensors as Black Forest Labs released it
  (`double_blocks.N.img_attn.qkv.weight`, `img_in`, `guidance_in` for dev ...), optionally
  stored as float8 e4m3fn like the "-fp8" files.
- `write_comfy_checkpoint`: ComfyUI's all-in-one checkpoint: the transformer under
  `model.diffusion_model.`, CLIP-L under `text_encoders.clip_l.transformer.`, T5 under
  `text_encoders.t5xxl.transformer.` and the VAE under `vae.` in BFL's (LDM) VAE names.
- `write_gguf_transformer`: city96's GGUF layout (BFL names, `general.architecture` "flux",
  1-D tensors and the embedders/final layer kept F32, the rest quantized), written with the
  `gguf` package.
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
    """A GGUF file as city96's tools/convert.py writes one from a BFL checkpoint."""
    return write_gguf(transformer_tensors(transformer), path, "flux", qtype)


def write_gguf_t5(text_encoder_2, path: Path, qtype: str = "Q8_0") -> Path:
    """A GGUF T5 encoder in llama.cpp's names (city96's t5-v1_1-xxl-encoder-gguf)."""
    tensors = flux_layout.t5_to_gguf_names(state_of(text_encoder_2))
    return write_gguf(tensors, path, "t5encoder", qtype)


def write_gguf(
    tensors: dict, path: Path, arch: str, qtype: str, keep: tuple[str, ...] = ()
) -> Path:
    """A GGUF file of `tensors`: 1-D ones, Flux's small layers and the `keep` keys F32."""
    import gguf
    import numpy as np

    quant = getattr(gguf.GGMLQuantizationType, qtype)
    full = gguf.GGMLQuantizationType.F32
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path=None, arch=arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(quant)
    for key, tensor in sorted(tensors.items()):
        data = tensor.detach().to(torch.float32).numpy()
        wanted = quant
        if (
            data.ndim == 1
            or key in keep
            or (any(x in key for x in _GGUF_FULL_PRECISION) and ".weight" in key)
        ):
            wanted = full
        try:
            packed = gguf.quants.quantize(data, wanted)
        except gguf.QuantError:  # a row width the block size does not divide
            wanted = full
            packed = gguf.quants.quantize(data, wanted)
        writer.add_tensor(key, np.ascontiguousarray(packed), raw_dtype=wanted)
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


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
