"""The UNet-era families: SD1.x, SD2.x (epsilon and v-prediction) and SDXL.

SD2.x shares SD1.x's pipelines, UNet block numbering and preview factors; what differs
(the OpenCLIP text encoder, v-prediction, 768 px) comes from the checkpoint's catalog
config, not from code.
"""

from __future__ import annotations

from dataclasses import replace

from dreamwire.shared import families

from .spec import (
    FamilySpec,
    LoraLineage,
    MemoryFigures,
    PipelineClasses,
    SingleFileText,
    Support,
)

_SD_PIPELINES = PipelineClasses(
    "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"
)
_SD_CONTROLNET = PipelineClasses(
    "StableDiffusionControlNetPipeline",
    "StableDiffusionControlNetImg2ImgPipeline",
    "StableDiffusionControlNetInpaintPipeline",
)
_SD_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
_SD_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SD_TAESD = ("taesd_decoder", "taesd")

SD1 = FamilySpec(
    family=families.SD1,
    pipelines=_SD_PIPELINES,
    controlnet_pipelines=_SD_CONTROLNET,
    components=_SD_COMPONENTS,
    pooled_text=False,
    safety_checker_slot=True,
    unet_blocks="sd",
    latent_rgb=_SD_LATENT_RGB,
    taesd_stems=_SD_TAESD,
    # Calibrated: SD1.5 UNet activations 25 KiB per latent pixel (512 and 1024).
    memory=MemoryFigures(859.5, 83.7, (123.1,), 0.42, 32 * 1024),
    lora=LoraLineage("sd", "SD1.x/SD2.x"),
    text_width=768,
    single_file_text=(SingleFileText("text_encoder", "clip", "cond_stage_model.transformer."),),
    support=Support(train_lora=True),  # backend/training is built for SD1.x and SDXL
)

# SD1.x's pipelines and layouts with its own sizes. v-prediction SD2.x checkpoints (768-v)
# are this same entry: the catalog's "sd2-v" config sets the scheduler's prediction_type,
# which every sampler then follows.
SD2 = replace(
    SD1,
    family=families.SD2,
    memory=MemoryFigures(865.9, 83.7, (340.4,), 0.42, 34 * 1024),
    # Not SD1's LoRA training: backend/training is built for SD1.x and SDXL only (kohya
    # names SD2's text encoder apart, and its v-prediction files need ss_v2).
    support=Support(),
    text_width=1024,
    # OpenCLIP ViT-H, stored in its own layout.
    single_file_text=(SingleFileText("text_encoder", "open_clip", "cond_stage_model.model."),),
)

SDXL = FamilySpec(
    family=families.SDXL,
    pipelines=PipelineClasses(
        "StableDiffusionXLPipeline",
        "StableDiffusionXLImg2ImgPipeline",
        "StableDiffusionXLInpaintPipeline",
    ),
    controlnet_pipelines=PipelineClasses(
        "StableDiffusionXLControlNetPipeline",
        "StableDiffusionXLControlNetImg2ImgPipeline",
        "StableDiffusionXLControlNetInpaintPipeline",
    ),
    components=_SD_COMPONENTS + ("text_encoder_2", "tokenizer_2"),
    pooled_text=True,
    safety_checker_slot=False,
    unet_blocks="sdxl",
    latent_rgb=(
        (0.3920, 0.4054, 0.4549),
        (-0.2634, -0.0196, 0.0653),
        (0.0568, 0.1687, -0.0755),
        (-0.3112, -0.2359, -0.2076),
    ),
    taesd_stems=("taesdxl_decoder", "taesdxl"),
    # Calibrated: SDXL UNet activations 15 KiB per latent pixel (1024); its VAE overflows in
    # fp16, so diffusers upcasts it to fp32 (force_upcast), doubling weights and activations.
    memory=MemoryFigures(2567.5, 83.7, (123.1, 694.7), 0.49, 20 * 1024, vae_upcast=2.0),
    lora=LoraLineage("sdxl", "SDXL"),
    support=Support(train_lora=True),  # backend/training: two text encoders, size ids
    text_width=2048,
    single_file_text=(
        SingleFileText("text_encoder", "clip", "conditioner.embedders.0.transformer."),
        SingleFileText(
            "text_encoder_2", "open_clip", "conditioner.embedders.1.model.", projection=True
        ),
    ),
)
