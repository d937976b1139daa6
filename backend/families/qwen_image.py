"""Qwen-Image (Alibaba Qwen): a 20 B MMDiT over 16-channel latents (the Wan 2.1 VAE's,
packed as 2x2 patches like Flux's), conditioned on Qwen2.5-VL-7B's last hidden states.

Qwen-Image-Edit and Edit-2509 share the architecture and take the picture twice: its latents
beside the noise, and the picture itself in Qwen2.5-VL (so their text encoding needs the
pipeline's own resized picture: engine/prompting_qwen.py). Real CFG with a negative prompt
(diffusers' `true_cfg_scale`), no distilled guidance.
"""

from __future__ import annotations

from dreamwire.shared import families

from .spec import (
    ControlNets,
    FamilySpec,
    LoraLineage,
    MemoryFigures,
    PipelineClasses,
    Sampling,
    Support,
    TextEncoding,
    Variant,
)

QWEN_IMAGE = FamilySpec(
    family=families.QWEN_IMAGE,
    pipelines=PipelineClasses(
        "QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"
    ),
    # InstantX's Qwen-Image-ControlNet-Union (diffusers QwenImageControlNetModel) in txt2img
    # jobs; diffusers has no img2img ControlNet pipeline (refused by name). Its
    # QwenImageControlNetInpaintPipeline runs InstantX's Inpainting net alone, from pure
    # noise with the masked picture and the mask as the net's control (the plan keeps the
    # Union out of inpaint jobs and asks for strength 1: unit_resolution.py).
    controlnet_pipelines=PipelineClasses(
        "QwenImageControlNetPipeline", None, "QwenImageControlNetInpaintPipeline"
    ),
    components=("vae", "text_encoder", "tokenizer", "transformer", "scheduler"),
    # The Edit pipelines' Qwen2.5-VL processor (the picture into the text encoder).
    optional_components=("processor",),
    pooled_text=False,
    safety_checker_slot=False,
    unet_blocks="",
    # ComfyUI's QwenImage latent format is Wan21's (comfy/latent_formats.py, class Wan21):
    # its factors act on the normalised latents the sampler loop carries.
    latent_rgb=(
        (-0.1299, -0.1692, 0.2932),
        (0.0671, 0.0406, 0.0442),
        (0.3568, 0.2548, 0.1747),
        (0.0372, 0.2344, 0.1420),
        (0.0313, 0.0189, -0.0328),
        (0.0296, -0.0956, -0.0665),
        (-0.3477, -0.4059, -0.2925),
        (0.0166, 0.1902, 0.1975),
        (-0.0412, 0.0267, -0.1364),
        (-0.1293, 0.0740, 0.1636),
        (0.0680, 0.3019, 0.1128),
        (0.0032, 0.0581, 0.0639),
        (-0.1251, 0.0927, 0.1699),
        (0.0060, -0.0633, 0.0005),
        (0.3477, 0.2275, 0.2950),
        (0.1984, 0.0913, 0.1861),
    ),
    latent_rgb_bias=(-0.1835, -0.0868, -0.3360),
    packed_latents=True,
    taesd_stems=(),  # ComfyUI has no TAESD for it either (Wan21's taesd_decoder_name: None)
    memory=MemoryFigures(
        # Counted on the meta device from the real configs (bench/pipeline_sim.py): transformer
        # 20.43 B, Qwen2.5-VL-7B 8.29 B (its vision tower included: the Edit models use
        # it), VAE 126.9 M. Activations simulated on fake tensors
        # (bench/bench_family_memory.py, 512 prompt tokens): 39.2 KiB per latent pixel
        # calibrated at 768 px, 37.5 at 1024, 35.9 at 2048; 43 KiB covers them with 10 % to
        # spare. Real CFG runs the transformer a second time after the first
        # (QwenImagePipeline's "uncond" call), not on a doubled batch: one call's
        # activations at a time. (It was Flux's 56 KiB on a doubled batch: 3x the simulation.)
        20430.4,
        126.9,
        (8292.2,),  # Qwen2.5-VL-7B
        # InstantX's Union ControlNet: 5 of the 60 blocks, 1,768.0 M on the meta device.
        0.087,
        43 * 1024,
        cfg_batch=False,
        # diffusers' layerwise casting skips norms; Qwen's AdaLN linears ("img_mod",
        # "txt_mod") are not named "norm", so 99.9 % of the weights are stored in fp8.
        cast_share=0.999,
        largest_layer_params_m=56.6,
        # Qwen2.5-VL's embedding (and its untied lm_head): 152064 x 3584.
        largest_module_params_m=545.0,
        # Its video VAE (Wan's, causal 3D convolutions) decodes one 1024 px frame with 5.24
        # GiB of calibrated activations, 2.2x SD's VAE_ACT_PER_PX; 2.4 with 10 % to spare.
        vae_act_scale=2.4,
        # Qwen2.5-VL-7B at 34 template + 512 prompt tokens: 460.6 MiB calibrated, 864 KiB
        # a token (+10 %: 950).
        text_tokens=34 + 512,
        text_act_per_token=950 * 1024,
    ),
    lora=LoraLineage("qwen-image", "Qwen-Image"),
    denoiser="transformer",
    text_encoding=TextEncoding.QWEN_VL,
    # ComfyUI's template: Euler over the model's shifted flow-matching schedule.
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
        latent_fill=False,
        attention_maps=False,
        cfg_rescale=False,
    ),
    # The Union net has no mode input: it reads the control type from the picture; its model
    # card names canny, soft edge, depth and pose (conditioning/qwen_controlnet.py).
    controlnets=ControlNets(
        model_class="QwenImageControlNetModel",
        image_argument="control_image",
        union_modes={"no_mode": dict.fromkeys(("canny", "softedge", "depth", "openpose"))},
    ),
    variants={
        # Qwen-Image-Edit: a picture plus an instruction ("make the car red"); diffusers'
        # QwenImageEditPipeline (the picture's latents as extra tokens, the picture in
        # Qwen2.5-VL at 384x384 px).
        "edit": Variant(PipelineClasses(None, None, None, edit="QwenImageEditPipeline")),
        # Qwen-Image-Edit-2509/2511 ("EditPlus"): several reference pictures; one here.
        "edit-plus": Variant(PipelineClasses(None, None, None, edit="QwenImageEditPlusPipeline")),
        # Qwen-Image-Layered: the picture decomposed into RGBA layers (its VAE is RGBA).
        "layered": Variant(PipelineClasses(None, None, None, layers="QwenImageLayeredPipeline")),
    },
    checkpoint_merge=False,
)
