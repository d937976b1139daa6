"""Building a diffusers StableDiffusion3Pipeline from the SD3 files artists have, offline.

Each component is built from the catalog's config (models/configs/sd3.5-*, tiny-sd3) and
its weights read from the file (library/flux_loading's readers: prefixes, ComfyUI's scaled
fp8 multiplied out, upcast to the compute dtype):

- transformer: SD3Transformer2DModel.from_single_file with the MMDiT's tensors; diffusers'
  converter (convert_sd3_transformer_checkpoint_to_diffusers) renames them, and the depth,
  dual-attention layers and q/k norms the file shows override the config's; a GGUF file
  (city96's sd3.5_large-Q4_0.gguf ...) stays quantized, an fp8 one stays fp8 (layerwise
  casting), as for Flux;
- CLIP-L and CLIP-G: transformers' CLIPTextModelWithProjection, parameters on the meta
  device, then the file's tensors assigned;
- T5: as for Flux (text_encoder_3's config);
- VAE: AutoencoderKL.from_single_file (LDM names) with SD3's scaling and shift factors.
"""

from __future__ import annotations

from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library import sd3_layout
from dreamwire.backend.library.catalog import pipeline_config_dir
from dreamwire.backend.library.entries import Format, ModelEntry
from dreamwire.backend.library.flux_loading import (
    as_float,
    assign_state,
    component_config,
    fp8_storage,
    load_t5,
    load_vae,
    read_tensors,
    single_file_transformer,
)
from dreamwire.backend.library.flux_parts import Part
from dreamwire.backend.library.sd3_parts import Sd3Sources
from dreamwire.backend.library.t5_tokenizer import load_t5_tokenizer
from dreamwire.shared.errors import DreamwireError, ErrorCode


def config_arch(arch: str | None) -> str:
    if arch in catalog.archs():
        return arch
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        f"architecture {arch!r} is not supported; SD3 models Dreamwire runs: "
        + ", ".join(a for a in catalog.archs() if catalog.family_of(a) == "sd3"),
    )


def load_transformer(part: Part, arch: str, dtype):
    from diffusers import SD3Transformer2DModel

    tensors = read_tensors(part)
    quantized = part.entry.format == Format.GGUF
    fp8 = None if quantized else fp8_storage(tensors)
    if not quantized:
        tensors = as_float(tensors, dtype)
    keys = list(tensors)
    dual = sorted({int(k.split(".")[1]) for k in keys if ".x_block.attn2." in k})
    # city96's GGUF files stay quantized in memory and fp8 ones fp8, as for Flux.
    return single_file_transformer(
        SD3Transformer2DModel,
        tensors,
        arch,
        dtype,
        quantized,
        fp8,
        num_layers=sd3_layout.depth(keys),
        dual_attention_layers=tuple(dual),
        qk_norm="rms_norm" if any(".attn.ln_q." in k for k in keys) else None,
    )


def load_clip(part: Part, arch: str, dtype, component: str):
    """CLIP-L (text_encoder) or CLIP-G (text_encoder_2) with its text projection."""
    import torch
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with init_empty_weights(include_buffers=False):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**component_config(arch, component)))
    state = {
        k: v
        for k, v in read_tensors(part).items()
        if (k.startswith("text_model.") or k == "text_projection.weight")
        and not k.endswith("position_ids")
    }
    if "text_projection.weight" not in state:
        # Some clip_l.safetensors (those made for Flux) leave the projection out; ComfyUI
        # then uses the identity, as here.
        width = model.config.hidden_size
        state["text_projection.weight"] = torch.eye(width, model.config.projection_dim).T
    return assign_state(model, as_float(state, dtype), part)


def load_sd3_pipeline(entry: ModelEntry, sources: Sd3Sources, torch_dtype=None):
    import diffusers
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTokenizer

    dtype = torch_dtype or torch.float32
    arch = config_arch(entry.arch)
    folder = Path(pipeline_config_dir(arch))
    cls = getattr(diffusers, catalog.arch_info(arch)["pipeline"])
    return cls(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(folder), subfolder="scheduler", local_files_only=True
        ),
        vae=load_vae(sources.vae, arch, dtype),
        text_encoder=load_clip(sources.clip_l, arch, dtype, "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
        text_encoder_2=load_clip(sources.clip_g, arch, dtype, "text_encoder_2"),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2")),
        text_encoder_3=load_t5(sources.t5, arch, dtype, component="text_encoder_3"),
        tokenizer_3=load_t5_tokenizer(sources.t5_tokenizer),
        transformer=load_transformer(sources.transformer, arch, dtype),
    )
