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
    # ComfyUI's Flux.2 latent format (comfy/latent_formats.py, class Flux2): one row per
    # channel of the VAE's 32, applied after the sampler loop's 128 packed channels are
    # unpacked to 32 at twice the size (its latent_rgb_factors_reshape; preview.unpack_patches
    # in the same order). The latents are batch-normalised, as ComfyUI's are.
    latent_rgb=(
        (0.0058, 0.0113, 0.0073),
        (0.0495, 0.0443, 0.0836),
        (-0.0099, 0.0096, 0.0644),
        (0.2144, 0.3009, 0.3652),
        (0.0166, -0.0039, -0.0054),
        (0.0157, 0.0103, -0.016),
        (-0.0398, 0.0902, -0.0235),
        (-0.0052, 0.0095, 0.0109),
        (-0.3527, -0.2712, -0.1666),
        (-0.0301, -0.0356, -0.018),
        (-0.0107, 0.0078, 0.0013),
        (0.0746, 0.009, -0.0941),
        (0.0156, 0.0169, 0.007),
        (-0.0034, -0.004, -0.0114),
        (0.0032, 0.0181, 0.008),
        (-0.0939, -0.0008, 0.0186),
        (0.0018, 0.0043, 0.0104),
        (0.0284, 0.0056, -0.0127),
        (-0.0024, -0.0022, -0.003),
        (0.1207, -0.0026, 0.0065),
        (0.0128, 0.0101, 0.0142),
        (0.0137, -0.0072, -0.0007),
        (0.0095, 0.0092, -0.0059),
        (0.0, -0.0077, -0.0049),
        (-0.0465, -0.0204, -0.0312),
        (0.0095, 0.0012, -0.0066),
        (0.029, -0.0034, 0.0025),
        (0.022, 0.0169, -0.0048),
        (-0.0332, -0.0457, -0.0468),
        (-0.0085, 0.0389, 0.0609),
        (-0.0076, 0.0003, -0.0043),
        (-0.0111, -0.046, -0.0614),
    ),
    latent_rgb_bias=(-0.0329, -0.0718, -0.0851),
    packed_latents=True,
    taesd_stems=(),
    # Klein 4B, counted on the meta device from the catalog's flux2-klein-4b configs:
    # Flux2Transformer2DModel 3,875.5 M (5 double + 20 single blocks, 3072 wide), Qwen3-4B
    # 4,022.5 M (its embedding, 389 M, the largest module), Flux.2's VAE 84.0 M. Activations
    # simulated on fake tensors (bench/bench_family_memory.py, 512 text tokens): 62.6 KiB per
    # latent pixel calibrated at 768 px, 56.9 at 1024, 51.5 at 2048; 69 KiB covers them with
    # 10 % to spare. (It was Flux.1's 56 KiB, 11 % below the simulation at 768.) Distilled:
    # one call per step. 99.5 % of the transformer is stored in fp8 by layerwise casting; the
    # largest linear layer is a single block's fused qkv+mlp projection (84.9 M).
    memory=MemoryFigures(
        3875.5,
        84.0,
        (4022.5,),  # Qwen3-4B
        0.0,
        69 * 1024,
        cfg_batch=False,
        cast_share=0.995,
        largest_layer_params_m=84.9,
        largest_module_params_m=389.0,
        # Qwen3-4B at 512 tokens, its 151,936-wide logits included: 486.1 MiB
        # calibrated, 972 KiB a token (+10 %: 1070).
        text_tokens=512,
        text_act_per_token=1070 * 1024,
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
