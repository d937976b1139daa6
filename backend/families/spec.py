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
    measured peaks (16-bit weights, PyTorch SDPA attention). The denoiser is the UNet or
    the transformer; how its weights are stored (fp16, fp8, GGUF, NF4) is the model file's
    business (library/weight_formats.py), not the family's."""

    denoiser_params_m: float  # millions of parameters
    vae_params_m: float
    text_params_m: float  # every text encoder together
    controlnet_share: float  # a full ControlNet's weights as a share of its denoiser's
    denoiser_act_per_latent_px: int  # activation bytes per latent pixel per denoiser sample
    vae_upcast: float = 1.0  # 2.0 where diffusers decodes in fp32 (force_upcast)
    # Classifier-free guidance runs the denoiser on a doubled batch; False where the family
    # is guidance-distilled (Flux dev/schnell: one call per step).
    cfg_batch: bool = True
    # Share of the denoiser's parameters diffusers' layerwise casting stores in fp8: it
    # skips the layers its model class names (Flux: every "norm", whose AdaLN linears are
    # a quarter of the transformer).
    cast_share: float = 1.0
    # The denoiser's largest linear layer: a quantized model upcasts one layer at a time.
    largest_layer_params_m: float = 0.0
    # The largest single module of the whole pipeline (T5's embedding for Flux): what
    # sequential CPU offload holds on the GPU at once. 0: the plan does not offer
    # sequential offload for the family (SD1/SD2/SDXL fit their targets without it).
    largest_module_params_m: float = 0.0

    def params_m(self, part: str) -> float:
        return {
            "denoiser": self.denoiser_params_m,
            "vae": self.vae_params_m,
            "text": self.text_params_m,
        }[part]


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
