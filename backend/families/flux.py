"""Flux.1 (Black Forest Labs): a rectified-flow transformer over 16-channel latents packed
as 2x2 patches, conditioned on CLIP-L's pooled output and T5-XXL's token sequence.

dev and schnell share this entry: what differs (dev's guidance embedding, schnell's
unshifted schedule) is in the checkpoint's own config (models/configs/flux-dev, flux-schnell),
which the pipelines and the model's scheduler read.
"""

from __future__ import annotations

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

FLUX = FamilySpec(
    family=families.FLUX,
    pipelines=PipelineClasses("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline"),
    controlnet_pipelines=PipelineClasses(
        "FluxControlNetPipeline",
        "FluxControlNetImg2ImgPipeline",
        "FluxControlNetInpaintPipeline",
    ),
    components=(
        "vae",
        "text_encoder",
        "tokenizer",
        "text_encoder_2",
        "tokenizer_2",
        "transformer",
        "scheduler",
    ),
    pooled_text=True,
    safety_checker_slot=False,
    unet_blocks="",  # no UNet: IP-Adapter block tables do not apply
    # ComfyUI's Flux latent format (comfy/latent_formats.py, class Flux).
    latent_rgb=(
        (-0.0346, 0.0244, 0.0681),
        (0.0034, 0.0210, 0.0687),
        (0.0275, -0.0668, -0.0433),
        (-0.0174, 0.0160, 0.0617),
        (0.0859, 0.0721, 0.0329),
        (0.0004, 0.0383, 0.0115),
        (0.0405, 0.0861, 0.0915),
        (-0.0236, -0.0185, -0.0259),
        (-0.0245, 0.0250, 0.1180),
        (0.1008, 0.0755, -0.0421),
        (-0.0515, 0.0201, 0.0011),
        (0.0428, -0.0012, -0.0036),
        (0.0817, 0.0765, 0.0749),
        (-0.1264, -0.0522, -0.1103),
        (-0.0280, -0.0881, -0.0499),
        (-0.1262, -0.0982, -0.0778),
    ),
    latent_rgb_bias=(-0.0329, -0.0718, -0.0851),
    packed_latents=True,
    taesd_stems=("taef1_decoder", "taef1"),
    # Flux.1 dev, counted on the real architecture by bench/pipeline_sim.py: transformer 11.9 B,
    # CLIP-L 123 M + T5-XXL encoder 4.76 B, 16-channel VAE 83.8 M. Transformer activations
    # (bf16, 4096 image + 512 text tokens at 1024 px) 29 KiB per latent pixel simulated,
    # 45 KiB calibrated (bench/bench_lowvram.py); 56 KiB also covers 768 px, whose 512 text
    # tokens weigh more per pixel. Guidance-distilled: one transformer call per step.
    # diffusers' layerwise casting keeps Flux's norm layers (AdaLN linears included) in
    # bf16: 72.7 % of the transformer is stored in fp8. Largest layer: a double block's
    # AdaLN linear (56.6 M); largest module: T5's embedding (131.6 M).
    memory=MemoryFigures(
        11901.4,
        83.8,
        (123.1, 4762.3),  # CLIP-L, T5-XXL's encoder
        # InstantX Union / Union-Pro: 5 double + 10 single blocks (3.3 B) of the
        # transformer's 19 + 38; single-type nets and Union-Pro 2.0 are smaller.
        0.28,
        56 * 1024,
        vae_upcast=1.0,
        cfg_batch=False,
        cast_share=0.727,
        largest_layer_params_m=56.6,
        largest_module_params_m=131.6,
        # T5-XXL at 512 tokens: 143.1 MiB calibrated, 286 KiB a token (+10 %: 315).
        text_tokens=512,
        text_act_per_token=315 * 1024,
    ),
    lora=LoraLineage("flux", "Flux.1"),
    denoiser="transformer",
    text_encoding=TextEncoding.CLIP_T5,
    # Reference units run Flux Redux (ComfyUI's style_models + SigLIP clip_vision).
    reference=Reference.REDUX,
    # Forge's Flux preset: Euler over the model's shifted flow-matching schedule ("Simple").
    sampling=Sampling(names=("Euler",), schedule="Simple"),
    support=Support(
        hires_latent=False,
        seamless=False,
        regions=False,
        composable=False,
        prompt_schedules=False,
        variation_seed=False,
        t2i_adapter=False,
        refine_upscale=False,
        latent_fill=False,
        attention_maps=False,
        cfg_rescale=False,
    ),
    distilled_guidance=True,
    # InstantX/Shakker Flux ControlNets (diffusers FluxControlNetModel): every pipeline takes
    # the control image as `control_image`. Union modes per the model cards: InstantX Union
    # and Shakker Union-Pro number canny 0, tile 1, depth 2, blur 3, pose 4, gray 5, low
    # quality 6 (blur, gray and low quality have no Dreamwire unit type; hard-edge types run
    # as canny); Union-Pro 2.0 has no mode input and serves canny, soft edge, depth, pose
    # and gray.
    controlnets=ControlNets(
        model_class="FluxControlNetModel",
        image_argument="control_image",
        union_modes={
            "modes": {
                "canny": 0,
                "lineart": 0,
                "lineart_anime": 0,
                "mlsd": 0,
                "tile": 1,
                "depth": 2,
                "openpose": 4,
            },
            "no_mode": dict.fromkeys(
                ("canny", "lineart", "lineart_anime", "mlsd", "softedge", "scribble", "depth")
                + ("openpose",)
            ),
        },
    ),
    # BFL's Canny/Depth Control LoRAs (conditioning/flux_control_conditioner.py): the
    # control image's latents go in beside the noise, per token.
    control_model_pipelines=PipelineClasses(
        "FluxControlPipeline", "FluxControlImg2ImgPipeline", "FluxControlInpaintPipeline"
    ),
    # Krita AI Diffusion's Flux inpaint uses flux1-fill when it is installed.
    inpaint_variant="fill",
    variants={
        # Flux.1 schnell: timestep-distilled to 1-4 steps, without the guidance input
        # (BFL's and Forge's 4 steps); the family's pipelines.
        "schnell": Variant(steps=4, guidance=False),
        # Flux.1 Fill: the masked picture and the mask go in beside the latents (384 input
        # channels); it only inpaints, at BFL's guidance 30, without a negative prompt.
        "fill": Variant(
            PipelineClasses(None, None, "FluxFillPipeline"), distilled_cfg=30.0, real_cfg=False
        ),
        # Flux.1 Kontext: the picture's latents go in as extra tokens beside the noise, and
        # the prompt is an instruction ("make the car red"); BFL's guidance 2.5.
        "kontext": Variant(
            PipelineClasses(
                "FluxKontextPipeline",
                None,
                "FluxKontextInpaintPipeline",
                edit="FluxKontextPipeline",
            ),
            distilled_cfg=2.5,
        ),
    },
    # Its single files are BFL's layout (and ComfyUI's bundles); A1111's merge rules are
    # written for the LDM one.
    checkpoint_merge=False,
)
