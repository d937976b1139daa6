"""What the backend needs to know about one model family, as data.

A `FamilySpec` holds everything that differs between architectures for the code that loads,
runs, conditions and previews a model: which diffusers pipelines serve each mode, which
components a pipeline is built from, how the text encoders' outputs are handed on, which
attention-block numbering the IP-Adapter block tables use, the preview factors and TAESD
files. Code asks the spec (`spec_for(model.family)`) instead of comparing family names, so a
new family is a new entry (backend/families/<name>.py) plus its tiny models and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import GenerationDefaults, ModelFamily
from dreamwire.shared.family_support import reason

MODES = ("txt2img", "img2img", "inpaint", "edit", "layers")


@dataclass(frozen=True)
class PipelineClasses:
    """diffusers pipeline class names per mode (names, so that reading a spec does not
    import diffusers); None where the family has no pipeline for a mode."""

    txt2img: str | None
    img2img: str | None
    inpaint: str | None
    edit: str | None = None  # an image plus an instruction (Flux Kontext-style edit models)
    layers: str | None = None  # an image decomposed into RGBA layers (Qwen-Image-Layered)

    def has(self, mode: str) -> bool:
        return mode in MODES and getattr(self, mode) is not None

    def for_mode(self, mode: str, family: str) -> str:
        if not self.has(mode):
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED, f"no {mode} pipeline for a {family} model"
            )
        return getattr(self, mode)


class Reference(str, Enum):
    """What runs a family's reference units (control type "ip-adapter")."""

    IP_ADAPTER = "ip_adapter"  # IP-Adapter files in the UNet's cross-attention (SD1/SD2/SDXL)
    # Flux Redux: SigLIP image tokens projected to T5's width and appended to the prompt.
    REDUX = "redux"


class TextEncoding(str, Enum):
    """How a family turns prompt text into the pipeline's conditioning inputs (the engine
    has one prompt encoder per value)."""

    # A1111's prompt language over CLIP hidden states (SD1.x/SD2.x; SDXL adds the second
    # encoder's pooled output): weights, BREAK, clip skip, embeddings, schedules, AND.
    CLIP = "clip"
    # Flux: CLIP-L's pooled output plus T5's token sequence; weights act on both as in
    # Forge, BREAK on CLIP only.
    CLIP_T5 = "clip_t5"
    # Z-Image, Flux.2 Klein: a Qwen3 LLM's hidden states over the prompt in its chat
    # template (the spec's `chat_text` says which); the text goes in as it is written, as
    # ComfyUI's tokenizers for them take it (no A1111 weights).
    QWEN3 = "qwen3"
    # SD3: CLIP-L's and CLIP-G's penultimate hidden states side by side, then T5's token
    # sequence after them; the two pooled outputs side by side (backend/sd3_encoding.py).
    CLIP_PAIR_T5 = "clip_pair_t5"

    # Qwen-Image: Qwen2.5-VL's last hidden states over Qwen's chat template (its system
    # prefix dropped) with their mask; plain text, no prompt weights.
    QWEN_VL = "qwen_vl"


@dataclass(frozen=True)
class ChatText:
    """How a family reads a chat LLM's hidden states as its text conditioning
    (TextEncoding.QWEN3)."""

    template: str  # the prompt's turn, `{}` the prompt
    # The hidden states taken (several: concatenated per token, Flux.2's 9/18/27).
    layers: tuple[int, ...] = (-2,)
    # Padded rows kept as one B x 512 x D tensor (Flux.2), or dropped, one tokens x D
    # tensor per prompt in a list (Z-Image).
    keep_padding: bool = False
    # The pipeline's guidance_scale for the job's CFG c: c - offset (Z-Image's pipelines
    # write CFG as cond + g * (cond - uncond), g = c - 1; Flux.2 Klein's as A1111, g = c).
    guidance_offset: float = 0.0


@dataclass(frozen=True)
class Sampling:
    """The sampler names a family takes. `names` None: every A1111 sampler of
    backend/samplers.py (discrete-time schedulers over the checkpoint's betas). A
    flow-matching family lists its own, run by the model's own scheduler class with its
    shift settings; `schedule` is the infotext "Schedule type" that scheduler is."""

    names: tuple[str, ...] | None = None
    schedule: str = ""


@dataclass(frozen=True)
class Support:
    """What a job may ask of a family beyond plain txt2img/img2img/inpaint; the plan refuses
    the rest before anything loads, naming the reason (shared/family_support.py
    FEATURE_REASONS, one per flag: the hosts refuse with the same words before sending)."""

    hires_latent: bool = True  # Hires.fix with a "Latent" upscaler (latents upscaled as is)
    seamless: bool = True  # circular padding in the denoiser's convolutions
    regions: bool = True  # regional prompts (attention masks per region)
    composable: bool = True  # AND prompts (one denoiser batch entry per subprompt)
    prompt_schedules: bool = True  # [from:to:when] and [a|b] change the prompt mid-run
    variation_seed: bool = True  # A1111's subseed blend of the initial noise
    controlnet: bool = True  # ControlNet units (the family's ControlNet models)
    ip_adapter: bool = True  # reference units (the family's `reference` kind runs them)
    t2i_adapter: bool = True  # T2I-Adapter units (they hook a UNet's down blocks)
    refine_upscale: bool = True  # SD upscale: tiles refined with img2img
    # Skip-layer guidance (Job.slg_scale): a second guidance term from the denoiser run with
    # some transformer layers skipped (SD3.5 only: diffusers' SD3 txt2img pipeline).
    skip_layer_guidance: bool = False
    # A1111's latent noise / latent nothing masked content (engine/masked_content.py wraps
    # the SD inpaint pipelines' prepare_latents).
    latent_fill: bool = True
    attention_maps: bool = True  # DAAM heat maps (a UNet's cross-attention to the tokens)
    # CFG rescale (Job.cfg_rescale): diffusers' rescale_noise_cfg of an eps/v-prediction
    # UNet's guided output (engine/cfg_rescale.py); not defined for flow-matching transformers.
    cfg_rescale: bool = True
    # LoRA training (JobMode.TRAIN_LORA, backend/training): its loop, LoRA layers and kohya
    # key names are built for SD1.x's and SDXL's UNets and CLIP text encoders only, so a
    # family opts in.
    train_lora: bool = False


# Plain generation only (txt2img/img2img/inpaint/edit as the pipelines allow): what a
# family whose conditioning is not A1111's CLIP language offers until each feature is
# wired for it (Z-Image, Flux.2 Klein).
GENERATION_ONLY = Support(**{f: False for f in Support.__dataclass_fields__})


@dataclass(frozen=True)
class MemoryFigures:
    """The real architecture's sizes for the memory plan (engine/memory_plan.py): weights
    from the released checkpoints, activations calibrated by bench/bench_lowvram.py against
    measured peaks (16-bit weights, PyTorch SDPA attention). The denoiser is the UNet or
    the transformer; how its weights are stored (fp16, fp8, GGUF, NF4) is the model file's
    business (library/weight_formats.py), not the family's."""

    denoiser_params_m: float  # millions of parameters
    vae_params_m: float
    # Each text encoder in the pipeline's order (SD3: CLIP-L, CLIP-G, T5-XXL): model CPU
    # offload moves one encoder at a time to the GPU, so its text stage holds the largest
    # alone, while every model resident holds them all.
    text_encoders_params_m: tuple[float, ...]
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
    # Of the denoiser's parameters, a buffer no quantizer (GGUF, NF4) stores quantized:
    # SD3's fixed position embedding, 16-bit in a GGUF file (Medium's is 9 % of it).
    unquantized_params_m: float = 0.0
    # The denoiser's largest linear layer: a quantized model upcasts one layer at a time.
    largest_layer_params_m: float = 0.0
    # The largest single module of the whole pipeline (T5's embedding for Flux): what
    # sequential CPU offload holds on the GPU at once. 0: the plan does not offer
    # sequential offload for the family (SD1/SD2/SDXL fit their targets without it).
    largest_module_params_m: float = 0.0
    # The VAE decode's activations per output pixel against SD's VAE (memory_plan's
    # VAE_ACT_PER_PX): Qwen-Image's video VAE (Wan's) holds about twice as much.
    vae_act_scale: float = 1.0
    # The text stage's activations: the most tokens the pipeline feeds its largest text
    # encoder (sim_families' TextPart.tokens) and that encoder's calibrated activation bytes
    # per token there (bench/bench_family_memory.py's text stage: its peak less its weights,
    # times the calibration factor, over the tokens, plus 10 %). Under model offload with a
    # small (fp8, Q4) transformer the text encoder is the largest stage, and its weights
    # alone fall 3-6 % short of the peak. 0: too small to matter (CLIP, SD1/SD2/SDXL).
    text_tokens: int = 0
    text_act_per_token: int = 0

    @property
    def text_params_m(self) -> float:
        """Every text encoder together."""
        return sum(self.text_encoders_params_m)

    @property
    def largest_text_params_m(self) -> float:
        """The largest single text encoder: what model offload's text stage holds."""
        return max(self.text_encoders_params_m)

    @property
    def text_act_bytes(self) -> int:
        return self.text_tokens * self.text_act_per_token

    def params_m(self, part: str) -> float:
        return {
            "denoiser": self.denoiser_params_m,
            "vae": self.vae_params_m,
            "text": self.text_params_m,
        }[part]


@dataclass(frozen=True)
class LoraLineage:
    """Which LoRA files a family's models take: a file made for one lineage fits every
    family of it and no other. SD1.x and SD2.x share one (kohya names both `lora_te_`; the
    layers' shapes tell them apart)."""

    key: str  # what a LoRA file's key names tell (conditioning/lora.py LoraFile.family)
    label: str  # "LoRA x was made for <label> models"


@dataclass(frozen=True)
class SingleFileText:
    """One text encoder as an A1111 single-file checkpoint stores it: its component, its
    key layout ("clip": Hugging Face CLIP names; "open_clip": OpenCLIP's) and the prefix,
    so library/expected.py can list the names a complete file must contain."""

    component: str  # "text_encoder", "text_encoder_2"
    layout: str  # "clip" | "open_clip"
    prefix: str
    projection: bool = False  # the encoder has a text projection (CLIPTextModelWithProjection)


@dataclass(frozen=True)
class Variant:
    """A special-purpose checkpoint of a family (the catalog's "variant" of its
    architecture, e.g. Flux Fill): its own pipelines and defaults."""

    pipelines: PipelineClasses | None = None  # None: the family's own
    distilled_cfg: float | None = None  # the guidance input's default, where it differs
    real_cfg: bool = True  # its pipeline takes a negative prompt for CFG above 1
    steps: int | None = None  # its default steps, where they differ (schnell: 4)
    cfg: float | None = None  # its default CFG scale, where it differs (SD3.5 Turbo: 1)
    # Whether it takes the family's distilled guidance input (schnell has none).
    guidance: bool = True
    # Its own memory figures where its architecture's sizes differ from the family's
    # (SD3.5 Medium's MMDiT-X beside Large's); None: the family's.
    memory: MemoryFigures | None = None


@dataclass(frozen=True)
class ControlNets:
    """How a family's ControlNets are built and driven (conditioning/controlnet_conditioner):
    the diffusers model class, the pipeline argument that carries the control images, and
    the control modes of its Union models per file kind (Dreamwire unit type -> the mode
    index the model was trained with). Empty `union_modes`: the family's Union models are
    xinsir's (conditioning/union.py)."""

    model_class: str = "ControlNetModel"
    image_argument: str = "image"  # txt2img's; the other modes take "control_image"
    union_modes: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # Modes with no ControlNet pipeline in which the units still run: the family's own
    # pipeline for the mode, its denoiser handed the nets' hints on every call (Z-Image's
    # img2img and inpaint: conditioning/zimage_control_stack.py `hints_into`).
    through_denoiser: tuple[str, ...] = ()

    def image_key(self, mode: str) -> str:
        return self.image_argument if mode == "txt2img" else "control_image"


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
    # The components' key of the network that denoises ("unet" or "transformer").
    denoiser: str = "unet"
    # Components that only some of its pipelines take, passed where the pipeline class has
    # them and the model has them (Qwen-Image-Edit's image processor).
    optional_components: tuple[str, ...] = ()
    text_encoding: TextEncoding = TextEncoding.CLIP
    chat_text: ChatText | None = None  # TextEncoding.QWEN3's template and layers
    reference: Reference = Reference.IP_ADAPTER
    sampling: Sampling = Sampling()
    support: Support = Support()
    # Latent -> RGB preview bias (added after `latent_rgb`), and whether the sampler loop
    # carries latents packed as 2x2 patches per token (Flux), to unpack for previews.
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    packed_latents: bool = False
    # The model's own guidance input (Flux dev's distilled guidance) is fed from the job's
    # distilled_cfg; families without one ignore that field.
    distilled_guidance: bool = False
    variants: dict[str, Variant] = field(default_factory=dict)
    # The variant whose checkpoints run inpaint jobs asked of the family's plain ones when
    # the library has one (Flux: "fill"; engine/inpaint_model.py); "" where none does.
    inpaint_variant: str = ""
    # Pipelines for a denoiser that takes the control image in its input (BFL's Flux
    # Control models, made from the plain model by a Control LoRA); None where none exist.
    control_model_pipelines: PipelineClasses | None = None
    # The width of the text the denoiser cross-attends to (the UNet's cross_attention_dim),
    # which names the family of an add-on file (ControlNet, IP-Adapter) by its shapes; None
    # where add-ons are told apart by their own keys (Flux).
    text_width: int | None = None
    # The text encoders of an A1111 single-file checkpoint, in the file's order; empty where
    # the family's single files are read by its own readers (Flux: backend/library/flux_*).
    single_file_text: tuple[SingleFileText, ...] = ()
    controlnets: ControlNets = ControlNets()
    # A1111's Checkpoint Merger rules hold for its single files (the LDM key layout: which
    # keys merge by "model" in their name, `first_stage_model.*` for a baked VAE).
    checkpoint_merge: bool = True

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

    def supported(self) -> tuple[str, ...]:
        """The Support flags this family has, by name (what the welcome lists)."""
        return tuple(f.name for f in fields(Support) if getattr(self.support, f.name))

    def refusal(self, feature: str) -> DreamwireError:
        return DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            reason(self.label, feature),
        )

    def variant(self, name: str) -> Variant:
        """The variant's entry, what it leaves out filled from the family (its pipelines,
        the Distilled CFG); the family's own for a plain checkpoint."""
        own = self.variants.get(name) or Variant()
        distilled = own.distilled_cfg
        return replace(
            own,
            pipelines=own.pipelines or self.pipelines,
            distilled_cfg=self.family.defaults.distilled_cfg if distilled is None else distilled,
        )

    def memory_for(self, variant: str = "") -> MemoryFigures:
        """The memory figures of a checkpoint of `variant` ("" = a plain one)."""
        own = self.variants.get(variant)
        return own.memory if own is not None and own.memory is not None else self.memory

    def defaults(self, variant: str) -> GenerationDefaults:
        """The generation defaults of a checkpoint of `variant` ("" = a plain one): the
        family's, with the variant's steps, CFG and Distilled CFG (none where it takes none)."""
        own, family = self.variant(variant), self.family.defaults
        return replace(
            family,
            steps=own.steps or family.steps,
            cfg=family.cfg if own.cfg is None else own.cfg,
            distilled_cfg=own.distilled_cfg if own.guidance else None,
        )

    def pipeline_class(
        self, mode: str, controlnet: bool = False, variant: str = "", control_model: bool = False
    ) -> type:
        import diffusers

        if control_model and self.control_model_pipelines is not None:
            table = self.control_model_pipelines
        elif controlnet:
            table = self.controlnet_pipelines
        else:
            table = self.variant(variant).pipelines
        return getattr(diffusers, table.for_mode(mode, self.label))
