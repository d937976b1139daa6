"""What the backend needs to know about one model family, as data.

A `FamilySpec` holds everything that differs between architectures for the code that loads,
runs, conditions and previews a model: which diffusers pipelines serve each mode, which
components a pipeline is built from, how the text encoders' outputs are handed on, which
attention-block numbering the IP-Adapter block tables use, the preview factors and TAESD
files. Code asks the spec (`spec_for(model.family)`) instead of comparing family names, so a
new family is a new entry (backend/families/<name>.py) plus its tiny models and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import ModelFamily

MODES = ("txt2img", "img2img", "inpaint")


@dataclass(frozen=True)
class PipelineClasses:
    """diffusers pipeline class names per mode (names, so that reading a spec does not
    import diffusers)."""

    txt2img: str
    img2img: str
    inpaint: str

    def for_mode(self, mode: str, family: str) -> str:
        if mode not in MODES:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED, f"no {mode} pipeline for a {family} model"
            )
        return getattr(self, mode)


@dataclass(frozen=True)
class MemoryFigures:
    """The real architecture's sizes for the memory plan (engine/memory_plan.py): weights
    from the released checkpoints, activations calibrated by bench/bench_lowvram.py against
    measured peaks (fp16, PyTorch SDPA attention)."""

    unet_params_m: float  # millions of parameters
    vae_params_m: float
    text_params_m: float  # every text encoder together
    controlnet_share: float  # a full ControlNet's weights as a share of its UNet's
    unet_act_per_latent_px: int  # UNet activation bytes per latent pixel per UNet sample
    vae_upcast: float = 1.0  # 2.0 where diffusers decodes in fp32 (force_upcast)

    def params_m(self, part: str) -> float:
        return {"unet": self.unet_params_m, "vae": self.vae_params_m, "text": self.text_params_m}[
            part
        ]


@dataclass(frozen=True)
class LoraLineage:
    """Which LoRA files a family's models take: a file made for one lineage fits every
    family of it and no other. SD1.x and SD2.x share one (kohya names both `lora_te_`; the
    layers' shapes tell them apart)."""

    key: str  # what a LoRA file's key names tell (conditioning/lora.py LoraFile.family)
    label: str  # "LoRA x was made for <label> models"


@dataclass(frozen=True)
class FamilySpec:
    family: ModelFamily  # what the hosts see: key, label, native resolution
    pipelines: PipelineClasses
    controlnet_pipelines: PipelineClasses
    # The pipeline's constructor arguments that come from the loaded model (plus scheduler).
    components: tuple[str, ...]
    # A second text encoder whose pooled output goes in as `add_text_embeds` (SDXL): per-step
    # prompt changes must swap it too.
    pooled_text: bool
    # The pipeline has a safety-checker slot that artists' checkpoints leave empty; it must
    # be told not to ask for one.
    safety_checker_slot: bool
    # Which attention-block numbering IPAdapter_plus's Style/Composition tables use for this
    # UNet ("sd": SD1.x/SD2.x, "sdxl").
    unet_blocks: str
    # Latents (4 channels) to RGB for cheap previews: A1111's "Approx cheap" factors.
    latent_rgb: tuple[tuple[float, float, float], ...]
    # TAESD decoder file stems, best first (models/VAE-approx).
    taesd_stems: tuple[str, ...]
    memory: MemoryFigures
    lora: LoraLineage

    @property
    def model_parts(self) -> tuple[str, ...]:
        """The components that hold weights (not tokenizers or the scheduler)."""
        return tuple(
            c for c in self.components if not c.startswith("tokenizer") and c != "scheduler"
        )

    @property
    def key(self) -> str:
        return self.family.key

    @property
    def label(self) -> str:
        return self.family.label

    def pipeline_class(self, mode: str, controlnet: bool = False) -> type:
        import diffusers

        table = self.controlnet_pipelines if controlnet else self.pipelines
        return getattr(diffusers, table.for_mode(mode, self.label))
