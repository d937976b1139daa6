"""Building a diffusers FluxPipeline from the Flux files artists have, offline.

Each component is built from the catalog's config (models/configs/flux-dev, tiny-flux ...)
with the shapes the file itself shows (guidance embedder, input channels, depth), and its
weights read from the file:

- transformer: BFL layout -> diffusers names (flux_layout), then
  FluxTransformer2DModel.from_single_file with the converted dict; a GGUF file keeps its
  quantized weights (diffusers' GGUFQuantizationConfig dequantizes per layer when it runs);
  an fp8 transformer stays fp8 in memory (layerwise casting: upcast one layer at a time);
  fp8 text encoders are upcast to the compute dtype (ComfyUI's "scaled" fp8 multiplied out);
  bitsandbytes NF4 weights (Forge's bnb-nf4 files) are expanded to float (library/nf4.py);
- CLIP-L and T5: transformers' models with their parameters on the meta device, then the
  file's tensors assigned (a GGUF T5 is unpacked: transformers cannot run packed weights);
- VAE: AutoencoderKL.from_single_file (LDM/BFL names).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library import flux_layout, nf4
from dreamwire.backend.library.catalog import pipeline_config_dir
from dreamwire.backend.library.entries import Format, ModelEntry
from dreamwire.backend.library.flux_parts import FluxSources, Part
from dreamwire.backend.library.t5_tokenizer import load_t5_tokenizer
from dreamwire.shared.errors import DreamwireError, ErrorCode

log = logging.getLogger(__name__)

# Pipelines for the variants the catalog has no arch of its own for (same components).
_VARIANT_PIPELINES = {
    "fill": "FluxFillPipeline",
    "kontext": "FluxKontextPipeline",
    "control": "FluxControlPipeline",
}


def config_arch(arch: str | None) -> str:
    """The catalog arch whose configs a Flux file loads with: its own when the catalog has
    it, else tiny-flux or flux-dev (the file's shapes then adjust the transformer config)."""
    if arch in catalog.archs():
        return arch
    return "tiny-flux" if (arch or "").startswith("tiny") else "flux-dev"


def pipeline_class(entry: ModelEntry):
    import diffusers

    variant = entry.detail.get("variant", "")
    name = _VARIANT_PIPELINES.get(variant) or catalog.arch_info(config_arch(entry.arch))["pipeline"]
    return getattr(diffusers, name)


def read_tensors(part: Part) -> dict:
    """The tensors under part.prefix (prefix removed). GGUF tensors stay quantized
    (diffusers' GGUFParameter) so that a Q4 file stays Q4 in memory."""
    path = part.entry.path
    if part.entry.format == Format.GGUF:
        from diffusers.models.model_loading_utils import load_gguf_checkpoint

        return flux_layout.strip_prefix(load_gguf_checkpoint(str(path)), part.prefix)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {
            key[len(part.prefix) :]: f.get_tensor(key)
            for key in f.keys()  # noqa: SIM118 (safe_open is not a dict)
            if key.startswith(part.prefix)
        }
    if nf4.has_nf4(tensors):
        # Forge's bnb-nf4 files: expanded here on every device (bitsandbytes' 4-bit layers
        # are not used), so the artist is told it saves no memory.
        log.warning(
            "%s: NF4 weights expanded to full precision on load (no memory saving on this machine)",
            path.name,
        )
        tensors = nf4.expand_nf4(tensors, path.name)
    return unscaled_fp8(tensors)


# ComfyUI's "scaled" fp8 files (t5xxl_fp8_e4m3fn_scaled.safetensors, ...) store each
# matrix as fp8 times a float32 scale: `X.scale_weight` (older, with a `scaled_fp8` marker)
# or `X.weight_scale` (newer). Loading them as plain fp8 would run with wrong weights.
_WEIGHT_SCALES = (".scale_weight", ".weight_scale")
_SCALE_EXTRAS = (".scale_input", ".input_scale", ".comfy_quant")


def unscaled_fp8(tensors: dict) -> dict:
    """Scaled fp8 weights multiplied out (float32); other files are returned as they are."""
    import torch

    scales = {k: v for k, v in tensors.items() if k.endswith(_WEIGHT_SCALES)}
    if not scales and "scaled_fp8" not in tensors:
        return tensors
    out = {
        k: v
        for k, v in tensors.items()
        if k not in scales and k != "scaled_fp8" and not k.endswith(_SCALE_EXTRAS)
    }
    for key, scale in scales.items():
        weight = key.rsplit(".", 1)[0] + ".weight"
        if weight in out:
            value = out[weight].to(torch.float32)
            # A per-tensor scalar, or one scale per output row.
            out[weight] = value * scale.to(torch.float32).reshape(-1, *[1] * (value.ndim - 1))
    return out


def component_config(arch: str, component: str) -> dict:
    return json.loads((catalog.config_dir(arch) / component / "config.json").read_text())


def as_float(tensors: dict, dtype) -> dict:
    """fp8 (and any other storage dtype) to the compute dtype; the layouts' models cannot
    compute in fp8 on every device, and the tests compare against the fp32 original."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def load_transformer(part: Part, arch: str, dtype):
    from diffusers import FluxTransformer2DModel

    tensors = read_tensors(part)
    if any(k.startswith(flux_layout.COMFY_TRANSFORMER) for k in tensors):
        tensors = flux_layout.strip_prefix(tensors, flux_layout.COMFY_TRANSFORMER)
    shape = flux_layout.bfl_shape({k: tuple(v.shape) for k, v in tensors.items()})
    if shape is None:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{part.entry.name}: no Flux transformer in Black Forest Labs' layout in it",
        )
    quantized = part.entry.format == Format.GGUF
    fp8 = fp8_storage(tensors)
    state = flux_layout.bfl_to_diffusers(tensors)
    if not quantized:
        state = as_float(state, dtype)
    # The file decides the shapes the config may not know: a schnell or Fill file loaded
    # with dev's config, a pruned model with fewer blocks, a width of more heads (of the
    # config's head size, which the rotary embedding's axes are cut for).
    head_dim = int(component_config(arch, "transformer")["attention_head_dim"])
    overrides = {
        "num_attention_heads": shape.hidden // head_dim,
        "guidance_embeds": shape.guidance,
        "in_channels": shape.in_channels,
        "out_channels": int(state["proj_out.weight"].shape[0]),
        "num_layers": shape.double_blocks,
        "num_single_layers": shape.single_blocks,
    }
    return single_file_transformer(
        FluxTransformer2DModel, state, arch, dtype, quantized, fp8, **overrides
    )


def converted_transformer(cls, part: Part, arch: str, dtype):
    """cls from a transformer file in its vendor's layout, which diffusers' own single-file
    converter for cls renames (Z-Image, Flux.2): GGUF stays quantized, fp8 stays fp8."""
    tensors = read_tensors(part)
    quantized = part.entry.format == Format.GGUF
    fp8 = fp8_storage(tensors)
    state = tensors if quantized else as_float(tensors, dtype)
    return single_file_transformer(cls, state, arch, dtype, quantized, fp8)


def single_file_transformer(cls, state: dict, arch: str, dtype, quantized: bool, fp8, **config):
    """cls.from_single_file over `state` with the catalog's `arch` config (`config`: what
    the file's shapes override), offline; GGUF weights stay quantized, fp8 ones fp8."""
    kwargs = {}
    if quantized:
        from diffusers import GGUFQuantizationConfig

        kwargs["quantization_config"] = GGUFQuantizationConfig(compute_dtype=dtype)
    model = cls.from_single_file(
        state,
        config=str(catalog.config_dir(arch)),
        subfolder="transformer",
        local_files_only=True,
        torch_dtype=dtype,
        **config,
        **kwargs,
    )
    if fp8 is not None:
        # Kept as the file stores it (diffusers' layerwise casting: each layer upcast to the
        # compute dtype while it runs), so an fp8 file takes fp8's memory. The file's
        # values are fp8 values, so storing them again as fp8 loses nothing.
        model.enable_layerwise_casting(storage_dtype=fp8, compute_dtype=dtype)
    return model


def fp8_storage(tensors: dict):
    """The fp8 dtype most of the file's matrices are stored in, or None."""
    import torch

    kinds = {torch.float8_e4m3fn, torch.float8_e5m2}
    counts: dict = {}
    for v in tensors.values():
        if getattr(v, "ndim", 0) == 2:
            counts[v.dtype] = counts.get(v.dtype, 0) + 1
    if not counts:
        return None
    dtype = max(counts, key=counts.get)
    return dtype if dtype in kinds else None


def load_clip_l(part: Part, arch: str, dtype):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    # Parameters on the meta device (T5-XXL would take minutes to initialise randomly);
    # buffers real: CLIP's position_ids are not in the file.
    with init_empty_weights(include_buffers=False):
        model = CLIPTextModel(CLIPTextConfig(**component_config(arch, "text_encoder")))
    wrapped = any(k.startswith("text_model.") for k in model.state_dict())
    state = {}
    for key, value in read_tensors(part).items():
        # ComfyUI's file also has text_projection / logit_scale, which Flux does not use.
        if key.startswith("text_model.") and not key.endswith("position_ids"):
            state[key if wrapped else key.removeprefix("text_model.")] = value
    return assign_state(model, as_float(state, dtype), part)


def load_t5(part: Part, arch: str, dtype, component: str = "text_encoder_2"):
    """T5's encoder with the config of `arch`'s `component` (SD3's is text_encoder_3)."""
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    with init_empty_weights(include_buffers=False):
        model = T5EncoderModel(T5Config(**component_config(arch, component)))
    tensors = read_tensors(part)
    if part.entry.format == Format.GGUF:
        # transformers' T5 cannot run on packed GGUF weights: they are unpacked once here
        # (the transformer, the large part, stays packed).
        tensors = flux_layout.t5_from_gguf_names(dequantized(tensors))
    state = as_float(tensors, dtype)
    # The token embedding is one tensor under two names; files store either or both
    # (t5xxl_fp16.safetensors: `shared` only).
    for name, twin in (
        ("encoder.embed_tokens.weight", "shared.weight"),
        ("shared.weight", "encoder.embed_tokens.weight"),
    ):
        if name not in state and twin in state:
            state[name] = state[twin]
    return assign_state(model, state, part)


def dequantized(tensors: dict) -> dict:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    return {
        k: dequantize_gguf_tensor(v) if isinstance(v, GGUFParameter) else v
        for k, v in tensors.items()
    }


def assign_state(model, state: dict, part: Part):
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    if missing:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{part.entry.name} ({part.entry.path.name}) lacks {len(missing)} tensors of its "
            f"text encoder, e.g. {', '.join(missing[:3])}",
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=True, assign=True)
    return model.eval()


def load_vae(part: Part, arch: str, dtype):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_single_file(
        as_float(read_tensors(part), dtype),
        config=str(catalog.config_dir(arch)),
        subfolder="vae",
        local_files_only=True,
        torch_dtype=dtype,
    )


def load_flux_pipeline(entry: ModelEntry, sources: FluxSources, torch_dtype=None):
    """One FluxPipeline (or the variant's pipeline: Fill, Kontext) from the sources' files."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTokenizer

    dtype = torch_dtype or torch.float32
    arch = config_arch(entry.arch)
    folder = pipeline_config_dir(arch)
    cls = pipeline_class(entry)
    return cls(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(folder), subfolder="scheduler", local_files_only=True
        ),
        vae=load_vae(sources.vae, arch, dtype),
        text_encoder=load_clip_l(sources.clip_l, arch, dtype),
        tokenizer=CLIPTokenizer.from_pretrained(str(Path(folder) / "tokenizer")),
        text_encoder_2=load_t5(sources.t5, arch, dtype),
        tokenizer_2=load_t5_tokenizer(sources.t5_tokenizer),
        transformer=load_transformer(sources.transformer, arch, dtype),
    )
