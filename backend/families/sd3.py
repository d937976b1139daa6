"""Stable Diffusion 3.5 (Stability AI): an MMDiT transformer over 16-channel latents,
conditioned on CLIP-L and CLIP-G (pooled, and their hidden states) and T5-XXL's sequence.

Large, Large Turbo and Medium share this entry. Large and Turbo have the same shapes (38
joint blocks, 2432 wide); Medium is MMDiT-X (24 blocks, 1536 wide, a second self-attention
in its first 13 blocks). What differs in running them is the checkpoint's own config
(models/configs/sd3.5-*), its variant's defaults below and Medium's own memory figures
(the memory plan reads them by variant); backend/library/sd3_identify.py tells them apart.
"""

from __future__ import annotations

from dataclasses import replace

from dreamwire.shared import families

from .spec import (
    ControlNets,
    FamilySpec,
    LoraLineage,
    MemoryFigures,
    PipelineClasses,
    Reference,
    Sampling,
    Support,
    TextEncoding,
    Variant,
)

# SD3.5 Large, counted on the meta device from models/configs/sd3.5-large: transformer
# 8056.6 M parameters + its 89.6 M position-embedding buffer (Medium: 2243.2 M + 226.5 M);
# CLIP-L 123.7 M + CLIP-G 694.7 M + T5-XXL encoder 4762.3 M; the 16-channel VAE 83.8 M.
# Stability's Large ControlNets (19 joint blocks, diffusers SD3ControlNetModel) are
# 4187.0 M, 0.52 of the transformer. Activations simulated on fake tensors
# (bench/bench_family_memory.py, 333 text tokens): 25.2 KiB per latent pixel calibrated at
# 768 px, 24.7 at 1024, 24.2 at 2048 (Medium 17.3 at 768); 28 KiB covers them with 10 %
# to spare. (It was Flux's 56 KiB scaled by the width, 44: 78 % above the simulation.)
# Real CFG: the transformer runs on a doubled batch (Turbo at CFG 1 runs one). diffusers' layerwise
# casting skips SD3's "pos_embed" and "norm" layers (the AdaLN linears): 65.9 % of the
# transformer is stored in fp8. Largest layer: a block's MLP (35.5 M); largest module:
# T5's embedding (131.6 M).
_LARGE_MEMORY = MemoryFigures(
    8056.6 + 89.6,
    83.8,
    (123.7, 694.7, 4762.3),  # CLIP-L, CLIP-G, T5-XXL's encoder
    0.52,
    28 * 1024,
    cfg_batch=True,
    cast_share=0.659,
    largest_layer_params_m=35.5,
    largest_module_params_m=131.6,
    unquantized_params_m=89.6,
    # T5-XXL at 256 tokens: 55.9 MiB calibrated, 224 KiB a token (+10 %: 250).
    text_tokens=256,
    text_act_per_token=250 * 1024,
)
_MEDIUM_MEMORY = replace(
    _LARGE_MEMORY,
    denoiser_params_m=2243.2 + 226.5,
    denoiser_act_per_latent_px=19 * 1024,
    cast_share=0.598,
    largest_layer_params_m=21.2,
    largest_module_params_m=226.5,
    unquantized_params_m=226.5,
)

SD3 = FamilySpec(
    family=families.SD3,
    pipelines=PipelineClasses(
        "StableDiffusion3Pipeline",
        "StableDiffusion3Img2ImgPipeline",
        "StableDiffusion3InpaintPipeline",
    ),
    # diffusers has an SD3 ControlNet pipeline for txt2img only (its ControlNet inpainting
    # pipeline is Alimama's inpaint net, not Stability's blur/canny/depth).
    controlnet_pipelines=PipelineClasses("StableDiffusion3ControlNetPipeline", None, None),
    components=(
        "vae",
        "text_encoder",
        "tokenizer",
        "text_encoder_2",
        "tokenizer_2",
        "text_encoder_3",
        "tokenizer_3",
        "transformer",
        "scheduler",
    ),
    pooled_text=True,
    safety_checker_slot=False,
    unet_blocks="",  # no UNet: IP-Adapter block tables do not apply
    # ComfyUI's SD3 latent format (comfy/latent_formats.py, class SD3).
    latent_rgb=(
        (-0.0922, -0.0175, 0.0749),
        (0.0311, 0.0633, 0.0954),
        (0.1994, 0.0927, 0.0458),
        (0.0856, 0.0339, 0.0902),
        (0.0587, 0.0272, -0.0496),
        (-0.0006, 0.1104, 0.0309),
        (0.0978, 0.0306, 0.0427),
        (-0.0042, 0.1038, 0.1358),
        (-0.0194, 0.0020, 0.0669),
        (-0.0488, 0.0130, -0.0268),
        (0.0922, 0.0988, 0.0951),
        (-0.0278, 0.0524, -0.0542),
        (0.0332, 0.0456, 0.0895),
        (-0.0069, -0.0030, -0.0810),
        (-0.0596, -0.0465, -0.0293),
        (-0.1448, -0.1463, -0.1189),
    ),
    latent_rgb_bias=(0.2394, 0.2135, 0.1925),
    # madebyollin's TAESD3 (ComfyUI: taesd3_decoder in models/vae_approx).
    taesd_stems=("taesd3_decoder", "taesd3"),
    memory=_LARGE_MEMORY,
    lora=LoraLineage("sd3", "SD3.5"),
    denoiser="transformer",
    text_encoding=TextEncoding.CLIP_PAIR_T5,
    reference=Reference.IP_ADAPTER,
    # ComfyUI's SD3.5 workflows and Forge: Euler over the model's shifted flow-matching
    # schedule (shift 3.0, the scheduler config's).
    sampling=Sampling(names=("Euler",), schedule="Simple"),
    support=Support(
        hires_latent=False,
        seamless=False,
        regions=False,
        composable=False,
        prompt_schedules=False,
        variation_seed=False,
        ip_adapter=False,
        t2i_adapter=False,
        refine_upscale=False,
        skip_layer_guidance=True,
        latent_fill=False,
        attention_maps=False,
        cfg_rescale=False,
    ),
    # Stability's SD3.5 Large ControlNets (blur, canny, depth) as diffusers loads them:
    # SD3ControlNetModel, the image as `control_image`.
    controlnets=ControlNets(model_class="SD3ControlNetModel", image_argument="control_image"),
    variants={
        # Large Turbo (ADD-distilled): Stability's card runs 4 steps without guidance
        # (guidance_scale 0 in diffusers, CFG 1 in ComfyUI/Forge terms: no negative pass).
        "turbo": Variant(steps=4, cfg=1.0),
        # Medium: Stability's card, 40 steps at guidance 4.5. Its MMDiT-X is its own size:
        # 2243.2 M parameters + a 226.5 M position-embedding buffer (192 x 192 patches, the
        # largest module); layerwise casting stores 59.8 % in fp8; largest layer a block's
        # MLP (21.2 M); 17.3 KiB per latent pixel calibrated at 768 px (16.9 at 1024), 19
        # with 10 % to spare (bench/bench_family_memory.py). Text encoders and VAE: Large's.
        "medium": Variant(steps=40, cfg=4.5, memory=_MEDIUM_MEMORY),
    },
    # Stability's single files are the MMDiT layout; A1111's merge rules are the LDM UNet's.
    checkpoint_merge=False,
)
