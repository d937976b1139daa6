"""Flux.2 Klein (Black Forest Labs): a Flux.2 transformer (shared modulation, 128 input
channels: Flux.2's 32-channel VAE latents in 2x2 patches, packed as tokens in the sampler
loop) conditioned on three hidden layers of its own Qwen3 text encoder (4B: Qwen3-4B, the
file Z-Image uses too). Klein is distilled to 4 steps without CFG; an image reference
(diffusers' `image` input: the picture's latents as extra tokens) is its edit mode.

Run from diffusers folders (black-forest-labs/FLUX.2-klein-4B) or from the single files
ComfyUI's template uses (library/flux2_loading.py); Klein 9B and Flux.2 dev are recognised
and refused by name.
"""

from __future__ import annotations

from dreamwire.shared import families

from .spec import (
    GENERATION_ONLY,
    ChatText,
    ControlNets,
    FamilySpec,
    LoraLineage,
    MemoryFigures,
    PipelineClasses,
    Sampling,
    TextEncoding,
)

FLUX2 = FamilySpec(
    family=families.FLUX2,
    pipelines=PipelineClasses(
        "Flux2KleinPipeline", None, "Flux2KleinInpaintPipeline", edit="Flux2KleinPipeline"
    ),
    controlnet_pipelines=PipelineClasses(None, None, None),
    components=("vae", "text_encoder", "tokenizer", "transformer", "scheduler"),
    pooled_text=False,
    safety_checker_slot=False,
    unet_blocks="",
    # No latent preview factors are known for Flux.2's 32 channels here: the approximation
    # previews grey (a TAESD for Flux.2 would replace it).
    latent_rgb=((0.0, 0.0, 0.0),) * 32,
    packed_latents=True,
    taesd_stems=(),
    # Klein 4B, counted on the meta device from the catalog's flux2-klein-4b configs:
    # Flux2Transformer2DModel 3,875.5 M (5 double + 20 single blocks, 3072 wide), Qwen3-4B
    # 4,022.5 M (its embedding, 389 M, the largest module), Flux.2's VAE 84.0 M. Activations
    # not calibrated: Flux.1's 56 KiB per latent pixel (the same width). Distilled: one
    # call per step. 99.5 % of the transformer is stored in fp8 by layerwise casting; the
    # largest linear layer is a single block's fused qkv+mlp projection (84.9 M).
    memory=MemoryFigures(
        3875.5,
        84.0,
        4022.5,
        0.0,
        56 * 1024,
        cfg_batch=False,
        cast_share=0.995,
        largest_layer_params_m=84.9,
        largest_module_params_m=389.0,
    ),
    lora=LoraLineage("flux2", "Flux.2"),
    denoiser="transformer",
    text_encoding=TextEncoding.QWEN3,
    # diffusers' Flux2KleinPipeline: Qwen3's template with thinking off (the empty think
    # block), hidden states 9, 18 and 27 side by side, padded to 512; CFG as A1111 writes it.
    chat_text=ChatText(
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        layers=(9, 18, 27),
        keep_padding=True,
    ),
    sampling=Sampling(names=("Euler",), schedule="Simple"),
    support=GENERATION_ONLY,
    controlnets=ControlNets(),
    checkpoint_merge=False,
)
