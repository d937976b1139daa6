"""Z-Image Turbo (Tongyi-MAI): a single-stream transformer over Flux's 16-channel latents
(2x2 patches inside the model, so the sampler loop carries plain B x C x h x w latents),
conditioned on one Qwen3-4B text encoder's second-to-last hidden states.

Turbo is distilled to 8 function evaluations without classifier-free guidance (the model
card's guidance_scale 0, ComfyUI's CFG 1); its scheduler is flow-matching Euler with a fixed
shift of 3 (models/configs/zimage-turbo/scheduler), which the pipelines read.
"""

from __future__ import annotations

from dataclasses import replace

from dreamwire.shared import families

from .flux import FLUX
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

ZIMAGE = FamilySpec(
    family=families.ZIMAGE,
    pipelines=PipelineClasses("ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"),
    # Alibaba PAI's Z-Image-Turbo-Fun-Controlnet-Union (diffusers ZImageControlNetModel); no
    # img2img ControlNet pipeline exists. diffusers' ZImageControlNetInpaintPipeline (Fun 2.0
    # and 2.1 only) has no strength: it always starts from noise and keeps nothing of the
    # picture outside the mask, so it is not an inpaint pass as Dreamwire runs them. Both
    # modes run the family's own img2img/inpaint pipelines with the net's hints handed to
    # the transformer (`controlnets.through_denoiser`).
    controlnet_pipelines=PipelineClasses("ZImageControlNetPipeline", None, None),
    components=("vae", "text_encoder", "tokenizer", "transformer", "scheduler"),
    pooled_text=False,
    safety_checker_slot=False,
    unet_blocks="",  # no UNet: IP-Adapter block tables do not apply
    # Flux.1's VAE (ae.safetensors), so Flux's latent factors and TAEF1 preview it.
    latent_rgb=FLUX.latent_rgb,
    latent_rgb_bias=FLUX.latent_rgb_bias,
    taesd_stems=FLUX.taesd_stems,
    # Counted on the real architecture (catalog config zimage-turbo, meta device):
    # ZImageTransformer2DModel 6,155 M (30 layers + 2 + 2 refiner layers, 3840 wide),
    # Qwen3-4B text model 4,022 M (its 151,936 x 2560 embedding, 389 M, the largest module),
    # Flux's VAE 83.8 M. Activations simulated on fake tensors (bench/bench_family_memory.py,
    # 512 caption tokens): 56.7 KiB per latent pixel calibrated at 768 px, 52.0 at 1024, 47.5
    # at 2048; 63 KiB covers them with 10 % to spare. (It was Flux's 56 KiB scaled by the
    # width, 70: 35 % above the simulation at 1024.) CFG-free: one call per step.
    # Layerwise casting skips only t_embedder/cap_embedder (and norms): 99.8 % in fp8.
    # Largest linear layer: a refiner's feed-forward w3 (39.3 M).
    memory=MemoryFigures(
        6154.9,
        83.8,
        (4022.5,),  # Qwen3-4B
        # The Fun ControlNet Union: 15 control layers of the transformer's 30 + 2 refiners.
        0.5,
        63 * 1024,
        vae_upcast=1.0,
        cfg_batch=False,
        cast_share=0.998,
        largest_layer_params_m=39.3,
        largest_module_params_m=389.0,
        # Qwen3-4B at 512 tokens (hidden states, no logits): 304.5 MiB calibrated, 609 KiB
        # a token (+10 %: 670).
        text_tokens=512,
        text_act_per_token=670 * 1024,
    ),
    lora=LoraLineage("zimage", "Z-Image"),
    denoiser="transformer",
    text_encoding=TextEncoding.QWEN3,
    # ComfyUI's Z-Image template (Qwen3's with thinking on), the second-to-last layer, the
    # real tokens only; diffusers' Z-Image guidance is CFG - 1.
    chat_text=ChatText(
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", guidance_offset=1.0
    ),
    # diffusers' Z-Image pipelines: Euler over the model's shifted flow-matching sigmas.
    sampling=Sampling(names=("Euler",), schedule="Simple"),
    # ControlNet units run on the Fun ControlNet (conditioning/zimage_controlnet.py).
    support=replace(GENERATION_ONLY, controlnet=True),
    # The Fun ControlNet Union (1.0, 2.0, 2.1) has no mode input: it reads the control type
    # from the picture; its model cards name Canny, HED, Depth, Pose and MLSD.
    controlnets=ControlNets(
        model_class="ZImageControlNetModel",
        image_argument="control_image",
        union_modes={"no_mode": dict.fromkeys(("canny", "softedge", "depth", "openpose", "mlsd"))},
        through_denoiser=("img2img", "inpaint"),
    ),
    # Its single files are ComfyUI's layout; A1111's merge rules are written for the LDM one.
    checkpoint_merge=False,
)
