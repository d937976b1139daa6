"""The one job description every entry point builds: CLI, Blender, Krita, tests.

Images travel as numpy arrays (H x W x C uint8, or H x W float32 for depth), never as
files or base64, so the wire can send them as raw frames. `Job.validate()` runs on the
client before sending and again on the backend on arrival; it only checks what can be
checked without models (names of models and samplers are checked by the backend).
"""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .animatediff import AnimateDiff, FrameControl, check_animatediff
from .errors import DreamwireError, ErrorCode
from .image_check import MAX_SIDE, check_image
from .job_fields import FieldCheck
from .job_mode import JobMode, implied_mode
from .lora_training import LoraTraining, check_lora_training, lora_training_from_wire
from .materials import Materials, check_materials
from .segment import Segment, check_segment, segment_from_wire

SEAMLESS_AXES = ("none", "both", "x", "y")
# Queue classes, best first. "live" (Krita's live preview) jumps every other class, and a new
# live job replaces the same client's previous one (backend/server/server.py, PROTOCOL.md).
PRIORITIES = {"live": -1, "interactive": 0, "normal": 1, "batch": 2}
# A job's class when it names none (Job.priority ""): a LoRA training holds its worker for
# minutes to hours, so it queues behind everything an artist waits for; the rest "normal".
MODE_PRIORITIES = {"train_lora": "batch"}
DEFAULT_PRIORITY = "normal"
CONTROL_MODES = ("balanced", "prompt", "controlnet")
CONTROL_TYPES = (
    "depth",
    "normalbae",
    "openpose",
    "seg",
    "canny",
    "mlsd",
    "softedge",
    "scribble",
    "lineart",
    "lineart_anime",
    "shuffle",
    "tile",
    "inpaint",
    "ip2p",
    "color",  # T2I-Adapter color (A1111 preprocessor t2ia_color_grid)
    # ControlNetMediaPipeFace (A1111 preprocessor mediapipe_face; the extension files it
    # under no control type filter but "All", so its type is named after the preprocessor).
    "mediapipe_face",
    "ip-adapter",  # reference image (A1111 preprocessors ip-adapter_clip_*)
    # Dreamwire's own (A1111 has none): the same IP-Adapter files with IPAdapter_plus's
    # "style transfer" / "composition" block maps (Krita AI Diffusion's Style/Composition).
    "ip-adapter-style",
    "ip-adapter-composition",
)
RESIZE_MODES = ("just_resize", "crop_and_resize", "resize_and_fill")
HIRES_UPSCALERS = ("Latent", "Lanczos", "Nearest")
# A1111's inpaint "Masked content" choices, by their UI names (0..3 in its API).
INPAINT_FILLS = ("fill", "original", "latent noise", "latent nothing")
# Job.inpaint_model: "auto" runs an inpaint job on a plain checkpoint on its family's
# inpainting model when the backend has one (Flux dev -> Flux Fill); "off" keeps the job's.
INPAINT_MODELS = ("auto", "off")

MAX_BATCH = 16
MAX_STEPS = 500
MAX_UPSCALE = 8.0  # A1111 Extras' "Resize" slider goes to 8
MIN_UPSCALE_TILE = 64
MAX_SEED = 2**64 - 1  # the backend uses seed & (2**32 - 1), as A1111; -1 (any negative): random
MAX_MASK_BLUR = 256  # A1111's slider stops at 64
MAX_LORA_WEIGHT = 100.0
# The extension's "Preprocessor resolution" slider range (ControlNetUnit.processor_res).
MIN_PROCESSOR_RES, MAX_PROCESSOR_RES = 64, 2048
# Regional prompts per job: the Latent Couple extension's sketch tab offers at most
# MAX_COLORS - 1 = 11 region prompts besides its general prompt.
MAX_REGIONS = 11
# A region mask may have another size than the area it covers (it is stretched to each
# pass's latent grid, as Latent Couple stretches its canvas), but not another shape.
REGION_RATIO_TOLERANCE = 0.05
# A1111's composable-prompt separator and extra-network tags (backend/prompts.py has the
# parser; shared/ is stdlib + numpy only).
_AND = re.compile(r"\bAND\b")
_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class ControlUnit:
    """One ControlNet in a job, as the A1111 ControlNet extension describes a unit."""

    type: str
    # None: the job's init image, as laid out for generation (grown when outpainting), as
    # A1111's ControlNet uses the img2img input for a unit without an image.
    image: np.ndarray | None
    model: str = ""  # ControlNet file in the library; "" picks one by type and base model
    weight: float = 1.0
    start: float = 0.0  # guidance start, fraction of the steps
    end: float = 1.0  # guidance end, fraction of the steps
    control_mode: str = "balanced"
    preprocessor: str = "none"  # "none": the host already made the control image
    resize_mode: str = "crop_and_resize"
    # The extension's "Preprocessor resolution": the preprocessor runs on the image resized
    # to this shorter side (64..2048); -1: the extension's default for the preprocessor.
    processor_res: int = -1


@dataclass
class Region:
    """A regional prompt (Latent Couple / Krita AI Diffusion regions): `prompt` guides the
    pixels under `mask`, the job's own prompt is the background.

    `mask` is H x W uint8, 255 = inside, over the job's whole result image (any size of the
    same aspect ratio; every region's mask the same size). `weight` is Latent Couple's area
    weight times (1 - its alpha blend), 0..1: inside the region the region's prompt guides
    with `weight * mask` and the background with what is left (`1 - sum`), see
    backend/engine/regions.py. The prompt may end in an A1111 subprompt weight
    (``a red barn :1.2``) but holds no ``AND`` and no ``<lora:...>`` tags."""

    prompt: str
    mask: np.ndarray
    weight: float = 1.0


@dataclass
class LoraRef:
    name: str
    weight: float = 1.0
    weight_te: float | None = None  # None: same as weight (A1111's single-number form)


@dataclass
class HiresFix:
    scale: float = 2.0
    denoise: float = 0.5
    steps: int = 0  # 0: same as the first pass, as in A1111
    upscaler: str = "Latent"
    prompt: str = ""  # A1111's "Hires prompt" for the second pass; "": the job's prompt
    negative: str = ""  # A1111's "Hires negative prompt"; "": the job's negative prompt
    # A1111's "Resize width to" / "Resize height to" (hr_resize_x/y); both 0: use `scale`.
    # One set: the other follows the first pass's aspect ratio. Both set: the first pass is
    # upscaled to cover that size and centre-cropped to it (in latent cells, as A1111 does).
    width: int = 0
    height: int = 0

    @property
    def resizes(self) -> bool:
        return bool(self.width or self.height)

    def plan(self, width: int, height: int) -> HiresPlan:
        """The second pass's size for a first pass of width x height (A1111's
        StableDiffusionProcessingTxt2Img.calculate_target_resolution)."""
        if not self.resizes:
            # A1111: int(size * scale); floored to what the VAE accepts.
            up_w, up_h = int(width * self.scale), int(height * self.scale)
            return HiresPlan(_floor8(up_w), _floor8(up_h), 0, 0)
        rx, ry = self.width, self.height
        trunc_x = trunc_y = 0
        if ry == 0:
            up_w, up_h = rx, rx * height // width
        elif rx == 0:
            up_w, up_h = ry * width // height, ry
        else:
            # Cover the requested box with the first pass's aspect ratio, then crop.
            if width / height < rx / ry:
                up_w, up_h = rx, rx * height // width
            else:
                up_w, up_h = ry * width // height, ry
            trunc_x, trunc_y = (up_w - rx) // 8, (up_h - ry) // 8
        return HiresPlan(_floor8(up_w), _floor8(up_h), trunc_x, trunc_y, up_w, up_h)


def _hires_upscaler_ok(name) -> bool:
    """A built-in, or a model's name (the backend checks its library for it). A1111's other
    latent modes ("Latent (bicubic)" ...) are not offered."""
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        return False
    return name in HIRES_UPSCALERS or not name.startswith("Latent")


def _floor8(v: int) -> int:
    return v // 8 * 8


@dataclass(frozen=True)
class HiresPlan:
    """Where Hires.fix upscales to and how many latent cells (8 px) it crops off.

    A1111 crops `truncate // 2` cells from the left/top and `(truncate + 1) // 2` from the
    right/bottom of the upscaled latents (sample_hr_pass)."""

    upscale_width: int  # A1111's hr_upscale_to_x, floored to whole latent cells
    upscale_height: int
    truncate_x: int = 0
    truncate_y: int = 0
    # A1111's hr_upscale_to_x/y as computed (not floored): a resize to a size upscales the
    # pixels to exactly this; 0: the floored size.
    exact_width: int = 0
    exact_height: int = 0

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of the upscaled image that the pass keeps."""
        left, top = self.truncate_x // 2 * 8, self.truncate_y // 2 * 8
        right = self.upscale_width - (self.truncate_x + 1) // 2 * 8
        bottom = self.upscale_height - (self.truncate_y + 1) // 2 * 8
        return left, top, right, bottom

    @property
    def size(self) -> tuple[int, int]:
        """The second pass's (and the result's) width and height."""
        left, top, right, bottom = self.crop_box
        return right - left, bottom - top


@dataclass
class Outpaint:
    """Canvas growth in pixels on each side; the grown area is inpainted."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0

    def any(self) -> bool:
        return any((self.left, self.right, self.top, self.bottom))


@dataclass
class Upscale:
    """Upscale the init image, then optionally refine it tile by tile.

    A1111's Extras upscale (refine off) and its img2img "SD upscale" script (refine on:
    the upscaled image is cut into overlapping tiles, each tile is img2img'd with the job's
    prompt, sampler, steps, strength and seed, and the tiles are blended back). As in Krita
    AI Diffusion's upscale workspace, each tile can be guided by a tile ControlNet fed the
    tile itself, so a low strength adds detail without drifting from the picture. With
    the job's `seamless` axes a tiling texture stays tiling (engine/seamless_upscale)."""

    scale: float = 2.0
    upscaler: str = "Lanczos"  # "Lanczos", "Nearest" or an upscaler model (welcome's list)
    refine: bool = True
    tile: int = 0  # tile side in pixels (a multiple of 8); 0: the model family's native size
    overlap: int = 64  # A1111 SD upscale's "Tile overlap" default
    tile_control: bool = True  # a tile ControlNet per tile, when the library has one

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The result's (width, height) for an init image of width x height (the
        upscalers' round(side * scale))."""
        return round(width * self.scale), round(height * self.scale)


# The most layers a layers job asks for (Qwen-Image-Layered is trained for 3-8; ComfyUI's
# node allows up to 10).
MAX_LAYERS = 10


@dataclass
class Job:
    # What the job asks for. None: the mode its fields imply (job_mode.implied_mode), as a
    # job from before modes were typed means; validate() resolves it once, so the backend
    # and a host that validated read a JobMode. Fields of another mode are refused.
    mode: JobMode | None = None
    prompt: str = ""
    negative: str = ""
    model: str = ""  # "" = the backend's default model
    vae: str = ""  # "" = the checkpoint's own VAE
    sampler: str = "DPM++ 2M Karras"
    steps: int = 20
    cfg: float = 7.0
    # CFG rescale (Lin et al. 2023; diffusers' guidance_rescale, the A1111 extension's "CFG
    # Rescale"): 0 = off; ~0.7 for v-prediction zero-terminal-SNR models. Only SD pipelines.
    cfg_rescale: float = 0.0
    # Forge's "Distilled CFG Scale": the guidance input of a guidance-distilled model (Flux
    # dev); None: the family's default (shared/families.py). Ignored by other families.
    distilled_cfg: float | None = None
    # Skip-layer guidance (SD3.5; diffusers' skip_layer_guidance_scale, ComfyUI's
    # SkipLayerGuidanceSD3): 0 = off. The layers it skips are the model's (the catalog's).
    slg_scale: float = 0.0
    seed: int = -1  # -1: random, resolved by the backend and reported in the result
    subseed: int = -1
    subseed_strength: float = 0.0
    width: int = 512
    height: int = 512
    batch: int = 1
    clip_skip: int = 1
    init_image: np.ndarray | None = None  # H x W x 3|4 uint8
    strength: float = 0.75  # denoising strength for img2img / inpaint
    mask: np.ndarray | None = None  # H x W uint8, 255 = repaint
    mask_blur: int = 4
    inpaint_full_res: bool = False  # A1111 "Only masked"
    inpaint_padding: int = 32
    inpaint_fill: str = "original"  # A1111 "Masked content": one of INPAINT_FILLS
    inpaint_model: str = "auto"  # one of INPAINT_MODELS
    outpaint: Outpaint = field(default_factory=Outpaint)
    hires: HiresFix | None = None
    upscale: Upscale | None = None
    # PBR maps from the init image (mode materials only; shared/materials.py).
    materials: Materials | None = None
    # How many RGBA layers a layers job returns (mode layers only; on the wire only there).
    layer_count: int = 4
    # A batch of frames through a motion module (mode animatediff only; shared/animatediff.py).
    animatediff: AnimateDiff | None = None
    # Click-to-mask settings (mode segment only; shared/segment.py).
    segment: Segment | None = None
    # LoRA training settings (mode train_lora only; shared/lora_training.py).
    train_lora: LoraTraining | None = None
    seamless: str = "none"
    tiled_vae: bool | None = None  # None: decided from the size and free memory
    controls: list[ControlUnit] = field(default_factory=list)
    loras: list[LoraRef] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)  # regional prompts (Region)
    # A PRIORITIES class; "" (or left out on the wire): the mode's (MODE_PRIORITIES), set
    # when the job is built.
    priority: str = ""
    preview_every: int = 0  # 0: no previews; n: a preview every n steps
    # DAAM heat maps: one greyscale map per word of the prompt with each image
    # (GeneratedImage.heat_maps); CLIP families (SD1.x/SD2.x/SDXL) only.
    attention_maps: bool = False
    job_id: str = field(default_factory=new_job_id)
    tag: str = ""  # free text for the client's own bookkeeping (e.g. "frame 12")

    def __post_init__(self) -> None:
        if self.priority == "":  # anything else is validate()'s to refuse
            mode = self.mode.value if isinstance(self.mode, JobMode) else self.mode
            own = MODE_PRIORITIES.get(mode) if isinstance(mode, str) else None
            self.priority = own or DEFAULT_PRIORITY

    def validate(self) -> Job:
        """Raise DreamwireError for anything wrong that needs no models to see."""
        try:
            return self._validate()
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            # A field of the wrong JSON type (a list where a number belongs, say), or an
            # integer too large for a float (JSON has no size limit on integers).
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"malformed job field: {exc}", str(self.job_id)
            ) from None

    def _validate(self) -> Job:
        def bad(code: ErrorCode, msg: str) -> DreamwireError:
            return DreamwireError(code, msg, self.job_id)

        self._check_types()
        self._resolve_mode()

        if not isinstance(self.prompt, str) or not isinstance(self.negative, str):
            raise bad(ErrorCode.INVALID_PROMPT, "prompt and negative prompt must be text")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v % 8:
                raise bad(
                    ErrorCode.INVALID_SIZE, f"{name} must be a positive multiple of 8, got {v!r}"
                )
            if v > MAX_SIDE:
                raise bad(ErrorCode.INVALID_SIZE, f"{name} {v} is larger than {MAX_SIDE}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise bad(ErrorCode.INVALID_JOB, f"steps must be 1..{MAX_STEPS}, got {self.steps!r}")
        if not isinstance(self.batch, int) or not 1 <= self.batch <= MAX_BATCH:
            raise bad(ErrorCode.INVALID_JOB, f"batch must be 1..{MAX_BATCH}, got {self.batch!r}")
        if not 0.0 <= self.cfg <= 100.0:
            raise bad(ErrorCode.INVALID_JOB, f"CFG scale must be 0..100, got {self.cfg!r}")
        if not isinstance(self.clip_skip, int) or not 1 <= self.clip_skip <= 12:
            raise bad(ErrorCode.INVALID_JOB, f"clip skip must be 1..12, got {self.clip_skip!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise bad(
                ErrorCode.INVALID_STRENGTH, f"strength must be within 0..1, got {self.strength!r}"
            )
        if not 0.0 <= self.subseed_strength <= 1.0:
            raise bad(ErrorCode.INVALID_JOB, "subseed strength must be within 0..1")
        if not 0.0 <= self.cfg_rescale <= 1.0:
            raise bad(
                ErrorCode.INVALID_JOB, f"CFG rescale must be within 0..1, got {self.cfg_rescale!r}"
            )
        if self.seamless not in SEAMLESS_AXES:
            raise bad(ErrorCode.INVALID_JOB, f"seamless must be one of {SEAMLESS_AXES}")
        if self.seamless != "none" and self.inpaint_full_res and self.mask is not None:
            # "Only masked" samples a crop around the mask: no tile for the padding to wrap.
            raise bad(
                ErrorCode.INVALID_JOB,
                "a seamless inpaint samples the whole tile: send it without inpaint_full_res",
            )
        if self.priority not in PRIORITIES:
            raise bad(ErrorCode.INVALID_JOB, f"priority must be one of {tuple(PRIORITIES)}")
        if self.init_image is not None:
            check_image(self.init_image, "init image", self.job_id)
        if self.mask is not None:
            if self.init_image is None:
                raise bad(ErrorCode.INVALID_MASK, "a mask needs an init image to inpaint")
            m = self.mask
            if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != np.uint8:
                raise bad(ErrorCode.INVALID_MASK, "mask must be an H x W uint8 array")
            if m.shape != self.init_image.shape[:2]:
                raise bad(
                    ErrorCode.INVALID_MASK,
                    f"mask is {m.shape[1]}x{m.shape[0]} but the init image is "
                    f"{self.init_image.shape[1]}x{self.init_image.shape[0]}",
                )
        if self.inpaint_model not in INPAINT_MODELS:
            raise bad(
                ErrorCode.INVALID_JOB,
                f"unknown inpaint_model {self.inpaint_model!r}; known: {', '.join(INPAINT_MODELS)}",
            )
        if self.inpaint_fill not in INPAINT_FILLS:
            raise bad(
                ErrorCode.INVALID_JOB,
                f"unknown masked content {self.inpaint_fill!r}; known: {', '.join(INPAINT_FILLS)}",
            )
        if self.outpaint.any():
            if self.init_image is None:
                raise bad(ErrorCode.INVALID_JOB, "outpainting needs an init image to grow")
            o = self.outpaint
            if min(o.left, o.right, o.top, o.bottom) < 0:
                raise bad(ErrorCode.INVALID_JOB, "outpaint growth must not be negative")
        if self.hires is not None:
            h = self.hires
            if self.mode is not JobMode.TXT2IMG:
                # A1111's Hires.fix is a txt2img script: with a picture there is no first
                # pass to enlarge. Here, so that a host refuses it as the backend would.
                raise bad(
                    ErrorCode.INVALID_JOB, "Hires.fix applies to txt2img only (no init image)"
                )
            if not isinstance(h.prompt, str) or not isinstance(h.negative, str):
                raise bad(ErrorCode.INVALID_JOB, "Hires.fix prompts must be text")
            if not 1.0 <= h.scale <= 4.0:
                raise bad(ErrorCode.INVALID_JOB, f"Hires.fix scale must be 1..4, got {h.scale!r}")
            for name in ("width", "height"):
                v = getattr(h, name)
                # A1111's sliders: 0 (off) or 64..2048 in steps of 8; the cap here is ours.
                if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v % 8:
                    raise bad(
                        ErrorCode.INVALID_SIZE,
                        f"Hires.fix {name} must be 0 or a positive multiple of 8, got {v!r}",
                    )
                if v > MAX_SIDE:
                    raise bad(
                        ErrorCode.INVALID_SIZE, f"Hires.fix {name} {v} is larger than {MAX_SIDE}"
                    )
            if h.resizes:
                plan = h.plan(self.width, self.height)
                sides = (plan.upscale_width, plan.upscale_height, *plan.size)
                if min(sides) < 8 or max(sides) > MAX_SIDE:
                    raise bad(
                        ErrorCode.INVALID_SIZE,
                        f"Hires.fix resize of {self.width}x{self.height} to "
                        f"{h.width}x{h.height} upscales to "
                        f"{plan.upscale_width}x{plan.upscale_height}, outside 8..{MAX_SIDE}",
                    )
            if not 0.0 <= h.denoise <= 1.0:
                raise bad(
                    ErrorCode.INVALID_STRENGTH, "Hires.fix denoising strength must be within 0..1"
                )
            if not _hires_upscaler_ok(h.upscaler):
                raise bad(
                    ErrorCode.INVALID_JOB,
                    f"Hires.fix upscaler must be one of {HIRES_UPSCALERS} or the name of an "
                    f"upscaler model, got {h.upscaler!r}",
                )
        if self.upscale is not None:
            self._validate_upscale()
        if self.materials is not None:
            check_materials(self.materials, self.job_id)
        if self.animatediff is not None:
            check_animatediff(self.animatediff, self.job_id, (self.width, self.height))
        if self.attention_maps and (
            self.upscale or self.materials or self.regions or self.train_lora
        ):
            # DAAM reads one prompt over one generation's steps: an SD upscale's tiles,
            # Marigold's pipelines and per-region prompts have no such single reading.
            raise bad(
                ErrorCode.INVALID_JOB,
                "attention maps need one prompt generating one picture: not with an upscale, "
                "materials, regional prompts or LoRA training",
            )
        if self.segment is not None:
            size = None if self.init_image is None else self.init_image.shape[1::-1]
            check_segment(self.segment, self.job_id, size)
        if self.train_lora is not None:
            check_lora_training(self.train_lora, self.job_id)
        self._check_mode()
        for i, c in enumerate(self.controls):
            where = f"control unit {i} ({c.type})"
            if c.type not in CONTROL_TYPES:
                raise bad(
                    ErrorCode.INVALID_JOB,
                    f"{where}: unknown type; known: {', '.join(CONTROL_TYPES)}",
                )
            if c.image is not None:
                check_image(c.image, f"{where} image", self.job_id, allow_float=True)
            elif self.init_image is None:
                raise bad(
                    ErrorCode.INVALID_IMAGE,
                    f"{where}: needs an image, or an init image to take it from",
                )
            if not 0.0 <= c.start <= c.end <= 1.0:
                raise bad(ErrorCode.INVALID_JOB, f"{where}: need 0 <= start <= end <= 1")
            if not 0.0 <= c.weight <= 2.0:
                raise bad(ErrorCode.INVALID_JOB, f"{where}: weight must be within 0..2")
            if c.control_mode not in CONTROL_MODES:
                raise bad(
                    ErrorCode.INVALID_JOB, f"{where}: control mode must be one of {CONTROL_MODES}"
                )
            if c.resize_mode not in RESIZE_MODES:
                raise bad(
                    ErrorCode.INVALID_JOB, f"{where}: resize mode must be one of {RESIZE_MODES}"
                )
        for lora in self.loras:
            if not lora.name or "/" in lora.name or "\\" in lora.name or ".." in lora.name:
                raise bad(ErrorCode.INVALID_JOB, f"bad LoRA name {lora.name!r}")
        if self.regions:
            self._validate_regions()
        return self

    def implied_mode(self) -> JobMode:
        """The mode this job's fields imply (what a job naming none means)."""
        return implied_mode(
            picture=self.init_image is not None,
            mask=self.mask is not None,
            outpaint=self.outpaint.any(),
            upscale=self.upscale is not None,
        )

    def _resolve_mode(self) -> None:
        """A JobMode from now on: the one named (the wire sends its value), else the one the
        fields imply, decided here once."""
        if self.mode is None:
            self.mode = self.implied_mode()
            return
        try:
            self.mode = JobMode(self.mode)
        except (ValueError, TypeError):
            known = ", ".join(m.value for m in JobMode)
            raise FieldCheck(self.job_id).fail(
                "mode", f"one of {known} (or absent)", self.mode, ErrorCode.INVALID_JOB
            ) from None

    def _check_mode(self) -> None:
        """The fields the mode needs are there, and none that belong to another mode (a
        host that sets a mode and then, say, a mask has built the wrong job)."""
        mode = self.mode

        def bad(code: ErrorCode, msg: str) -> DreamwireError:
            return DreamwireError(code, f"a job of mode {mode} {msg}", self.job_id)

        picture = self.init_image is not None
        inpaints = self.mask is not None or self.outpaint.any()
        if mode is JobMode.TXT2IMG and picture:
            raise bad(ErrorCode.INVALID_JOB, "takes no init image (send mode img2img)")
        if mode is JobMode.ANIMATEDIFF and picture:
            raise bad(ErrorCode.INVALID_JOB, "takes no init image (frames come from noise)")
        if mode is JobMode.TRAIN_LORA and picture:
            raise bad(ErrorCode.INVALID_JOB, "takes no init image (it reads train_lora.data)")
        if mode not in (JobMode.TXT2IMG, JobMode.ANIMATEDIFF, JobMode.TRAIN_LORA) and not picture:
            raise bad(ErrorCode.INVALID_IMAGE, "needs an init image")
        if mode is JobMode.INPAINT and not inpaints:
            raise bad(ErrorCode.INVALID_MASK, "needs a mask or outpaint margins")
        if mode is not JobMode.INPAINT and inpaints:
            raise bad(ErrorCode.INVALID_JOB, "takes no mask or outpaint (send mode inpaint)")
        if mode is JobMode.UPSCALE and self.upscale is None:
            raise bad(ErrorCode.INVALID_JOB, "needs its upscale settings")
        if mode is not JobMode.UPSCALE and self.upscale is not None:
            raise bad(ErrorCode.INVALID_JOB, "takes no upscale settings (send mode upscale)")
        if mode is JobMode.EDIT and not self.prompt.strip():
            raise bad(ErrorCode.INVALID_PROMPT, "needs an instruction in its prompt")
        # Modes that make no generated picture (they read one image, or train a LoRA whose
        # samples show it alone): each needs its own settings and takes none of a
        # generation's extras.
        own_settings = (
            (JobMode.MATERIALS, self.materials),
            (JobMode.SEGMENT, self.segment),
            (JobMode.TRAIN_LORA, self.train_lora),
        )
        for own, settings in own_settings:
            if (mode is own) != (settings is not None):
                what = (
                    f"needs its {own} settings"
                    if settings is None
                    else f"takes no {own} settings (send mode {own})"
                )
                raise bad(ErrorCode.INVALID_JOB, what)
            if mode is own and (
                self.hires or self.controls or self.loras or self.regions or self.batch != 1
            ):
                raise bad(
                    ErrorCode.INVALID_JOB,
                    "takes no Hires.fix, control units, LoRAs, regions or batch",
                )
        if mode is JobMode.PREPROCESS:
            self._check_preprocess(bad)
        if mode is JobMode.LAYERS and (
            self.hires or self.controls or self.regions or self.batch != 1
        ):
            raise bad(
                ErrorCode.INVALID_JOB,
                "takes no Hires.fix, control units, regions or batch (one stack per picture)",
            )

        if (mode is JobMode.ANIMATEDIFF) != (self.animatediff is not None):
            what = (
                "needs its animatediff settings"
                if self.animatediff is None
                else "takes no animatediff settings (send mode animatediff)"
            )
            raise bad(ErrorCode.INVALID_JOB, what)
        if mode is JobMode.ANIMATEDIFF and (
            self.hires or self.controls or self.regions or self.batch != 1 or self.attention_maps
        ):
            raise bad(
                ErrorCode.INVALID_JOB,
                "takes no Hires.fix, control units (animatediff.controls has one image per "
                "frame), regions, attention maps or batch (animatediff.frames counts the "
                "frames)",
            )

    def _check_preprocess(self, bad: Callable[[ErrorCode, str], DreamwireError]) -> None:
        """A preprocess job runs one annotator on the init image: one unit that names its
        preprocessor and carries no image of its own, and none of a generation's extras."""
        if len(self.controls) != 1:
            raise bad(ErrorCode.INVALID_JOB, "needs exactly one control unit (its preprocessor)")
        unit = self.controls[0]
        if unit.preprocessor in ("", "none"):
            raise bad(ErrorCode.INVALID_JOB, "needs the unit's preprocessor (not 'none')")
        if unit.image is not None:
            raise bad(ErrorCode.INVALID_JOB, "reads the init image, not the unit's image")
        if self.hires or self.loras or self.regions or self.batch != 1 or self.attention_maps:
            raise bad(
                ErrorCode.INVALID_JOB,
                "takes no Hires.fix, LoRAs, regions, attention maps or batch",
            )

    def _check_types(self) -> None:
        """Every field's JSON type and range, naming the field (job_fields.py); what the
        values mean together is checked after this. Sizes, regions and upscale have checks
        of their own below."""
        f = FieldCheck(self.job_id)
        f.text("job_id", self.job_id)
        for name in ("prompt", "negative"):
            f.text(name, getattr(self, name), ErrorCode.INVALID_PROMPT)
        for name in (
            "model",
            "vae",
            "sampler",
            "inpaint_fill",
            "inpaint_model",
            "seamless",
            "priority",
            "tag",
        ):
            f.text(name, getattr(self, name))
        f.whole("steps", self.steps)
        f.whole("batch", self.batch)
        f.whole("clip_skip", self.clip_skip)
        f.whole("layer_count", self.layer_count, 1, MAX_LAYERS)
        for name in ("seed", "subseed"):
            f.whole(name, getattr(self, name), -MAX_SEED, MAX_SEED)
        f.number("cfg", self.cfg)
        if self.distilled_cfg is not None:
            f.number("distilled_cfg", self.distilled_cfg, 0.0, 100.0)
        f.number("subseed_strength", self.subseed_strength)
        f.number("cfg_rescale", self.cfg_rescale)
        f.number("slg_scale", self.slg_scale, 0.0, 100.0)
        f.number("strength", self.strength)
        f.whole("mask_blur", self.mask_blur, 0, MAX_MASK_BLUR)
        f.whole("inpaint_padding", self.inpaint_padding, 0, MAX_SIDE)
        f.whole("preview_every", self.preview_every, 0, MAX_STEPS)
        f.flag("inpaint_full_res", self.inpaint_full_res)
        f.flag("attention_maps", self.attention_maps)
        f.flag("tiled_vae", self.tiled_vae, optional=True)
        f.kind("outpaint", self.outpaint, Outpaint)
        for name in ("left", "right", "top", "bottom"):
            f.nested("outpaint.").whole(name, getattr(self.outpaint, name), 0, MAX_SIDE)
        if self.hires is not None:
            f.kind("hires", self.hires, HiresFix)
            h, fh = self.hires, f.nested("hires.")
            fh.number("scale", h.scale)
            fh.number("denoise", h.denoise)
            fh.whole("steps", h.steps, 0, MAX_STEPS)
            for name in ("upscaler", "prompt", "negative"):
                fh.text(name, getattr(h, name))
        f.listed("controls", self.controls)
        for i, c in enumerate(self.controls):
            f.kind(f"controls[{i}]", c, ControlUnit)
            fc = f.nested(f"controls[{i}].")
            for name in ("type", "model", "control_mode", "preprocessor", "resize_mode"):
                fc.text(name, getattr(c, name))
            fc.number("weight", c.weight)
            fc.number("start", c.start)
            fc.number("end", c.end)
            if type(c.processor_res) is not int or c.processor_res != -1:  # -1: the default
                fc.whole("processor_res", c.processor_res, MIN_PROCESSOR_RES, MAX_PROCESSOR_RES)
        f.listed("loras", self.loras)
        for i, lora in enumerate(self.loras):
            f.kind(f"loras[{i}]", lora, LoraRef)
            fl = f.nested(f"loras[{i}].")
            fl.text("name", lora.name)
            fl.number("weight", lora.weight, -MAX_LORA_WEIGHT, MAX_LORA_WEIGHT)
            if lora.weight_te is not None:
                fl.number("weight_te", lora.weight_te, -MAX_LORA_WEIGHT, MAX_LORA_WEIGHT)

    def region_area(self) -> tuple[int, int]:
        """(width, height) of the image a region mask covers: the job's result, before
        Hires.fix (which keeps the shape); an inpaint job's init image grown by the
        outpaint margins."""
        w, h = self.width, self.height
        if self.mode is JobMode.INPAINT and self.inpaint_full_res and self.init_image is not None:
            h, w = self.init_image.shape[:2]
        o = self.outpaint
        return w + o.left + o.right, h + o.top + o.bottom

    def _validate_regions(self) -> None:
        def bad(msg: str) -> DreamwireError:
            return DreamwireError(ErrorCode.INVALID_REGION, msg, self.job_id)

        if not isinstance(self.regions, list):
            raise bad("regions must be a list")
        if len(self.regions) > MAX_REGIONS:
            raise bad(f"at most {MAX_REGIONS} regions, got {len(self.regions)}")
        if self.upscale is not None:
            raise bad("regions do not combine with an upscale job")
        prompts = [("the prompt", self.prompt)]
        if self.hires is not None:
            prompts.append(("the Hires.fix prompt", self.hires.prompt))
        for what, text in prompts:
            if _AND.search(text):
                raise bad(
                    f"{what} is the background of the regions and cannot hold AND: give each "
                    "part its own region"
                )
        area_w, area_h = self.region_area()
        shape = None
        for i, r in enumerate(self.regions, 1):
            where = f"region {i}"
            if not isinstance(r, Region):
                raise bad(f"{where} must be a Region")
            if not isinstance(r.prompt, str) or not r.prompt.strip():
                raise bad(f"{where} has no prompt")
            if _AND.search(r.prompt):
                raise bad(f"{where}: a region's prompt cannot hold AND; add another region")
            if _EXTRA_NET.search(r.prompt):
                raise bad(f"{where}: put <lora:...> and other network tags in the main prompt")
            w = r.weight
            # math.isfinite would overflow on a huge int; the range check below catches those.
            finite = isinstance(w, int) or (isinstance(w, float) and math.isfinite(w))
            if isinstance(w, bool) or not finite:
                raise bad(f"{where}: weight must be a number, got {w!r}")
            if not 0.0 <= w <= 1.0:
                raise bad(f"{where}: weight must be within 0..1, got {w!r}")
            m = r.mask
            if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != np.uint8:
                raise bad(f"{where}: mask must be an H x W uint8 array")
            mh, mw = m.shape
            if min(mh, mw) < 1 or max(mh, mw) > MAX_SIDE:
                raise bad(f"{where}: mask size {mw}x{mh} out of range")
            if shape is not None and m.shape != shape:
                raise bad(
                    f"{where}: mask is {mw}x{mh} but region 1's is {shape[1]}x{shape[0]}; "
                    "every region's mask must have the same size"
                )
            shape = m.shape
            ratio = (mw / mh) / (area_w / area_h)
            if abs(ratio - 1.0) > REGION_RATIO_TOLERANCE:
                raise bad(
                    f"{where}: mask is {mw}x{mh}, not the shape of the {area_w}x{area_h} image "
                    "it covers"
                )

    def _validate_upscale(self) -> None:
        u = self.upscale

        def bad(code: ErrorCode, msg: str) -> DreamwireError:
            return DreamwireError(code, f"upscale: {msg}", self.job_id)

        if not isinstance(u, Upscale):
            raise bad(ErrorCode.INVALID_JOB, "must be an Upscale object")
        if self.init_image is None:
            raise bad(ErrorCode.INVALID_IMAGE, "needs an init image to upscale")
        if self.mask is not None or self.outpaint.any() or self.hires is not None:
            raise bad(ErrorCode.INVALID_JOB, "does not combine with a mask, outpaint or Hires.fix")
        scale_ok = isinstance(u.scale, int | float) and not isinstance(u.scale, bool)
        if not scale_ok or not 1.0 <= u.scale <= MAX_UPSCALE:
            raise bad(ErrorCode.INVALID_JOB, f"scale must be 1..{MAX_UPSCALE:g}, got {u.scale!r}")
        if not isinstance(u.upscaler, str) or not u.upscaler:
            raise bad(ErrorCode.INVALID_JOB, "upscaler must be a name")
        for name in ("refine", "tile_control"):
            if not isinstance(getattr(u, name), bool):
                raise bad(ErrorCode.INVALID_JOB, f"{name} must be true or false")
        h, w = self.init_image.shape[:2]
        out_w, out_h = u.size(w, h)
        if min(out_w, out_h) < 8 or max(out_w, out_h) > MAX_SIDE:
            raise bad(
                ErrorCode.INVALID_SIZE,
                f"{w}x{h} upscaled by {u.scale:g} is {out_w}x{out_h}, outside 8..{MAX_SIDE}",
            )
        tile, overlap = u.tile, u.overlap
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < 0 or tile % 8:
            raise bad(ErrorCode.INVALID_SIZE, f"tile must be 0 or a multiple of 8, got {tile!r}")
        if tile and not MIN_UPSCALE_TILE <= tile <= MAX_SIDE:
            raise bad(
                ErrorCode.INVALID_SIZE, f"tile must be {MIN_UPSCALE_TILE}..{MAX_SIDE}, got {tile}"
            )
        if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
            raise bad(
                ErrorCode.INVALID_JOB, f"overlap must be a whole number >= 0, got {overlap!r}"
            )
        if tile and overlap >= tile:
            # A1111's split_grid divides by tile - overlap.
            raise bad(ErrorCode.INVALID_JOB, f"overlap {overlap} must be smaller than tile {tile}")
        if u.refine and any(c.image is not None for c in self.controls):
            raise bad(
                ErrorCode.INVALID_JOB,
                "control units of a refined upscale follow each tile: give them no image",
            )

    # -- wire form -------------------------------------------------------------------
    def to_wire(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """A JSON-able dict plus the arrays it refers to as {"$array": index}."""
        arrays: list[np.ndarray] = []

        def conv(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                arrays.append(v)
                return {"$array": len(arrays) - 1}
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v

        body = conv(self)
        # Only a materials job carries the key, so every other body is what it was before
        # the field existed and a backend from then still runs it.
        if self.materials is None:
            del body["materials"]
        # Likewise the layer count: only a layers job sends it.
        if self.mode is not JobMode.LAYERS:
            del body["layer_count"]
        if self.animatediff is None:
            del body["animatediff"]
        if self.segment is None:
            del body["segment"]  # likewise: only a segment job carries it
        elif not self.segment.subject:
            del body["segment"]["subject"]  # a click job's body is what it was before it
        if self.train_lora is None:
            del body["train_lora"]  # likewise: only a training job carries it
        else:
            # Fields added since training came, at their defaults, go unsaid: a backend from
            # before them runs the job (a folder named in data, its UNet-only training).
            t = body["train_lora"]
            for key, default in (("pictures", []), ("repeats", 1)):
                if t[key] == default:
                    del t[key]
            if not t["network_train_unet_only"]:
                del t["network_train_unet_only"]
        # A mode the fields imply goes unsaid, so the body is what it was before modes were
        # typed and a backend from then still runs it (PROTOCOL.md, Changes); of the valid
        # jobs only an edit job, which no such backend could run, carries the key.
        if body["inpaint_model"] == "auto":
            del body["inpaint_model"]  # the default; a backend from before it runs the job
        if not self.cfg_rescale:
            del body["cfg_rescale"]  # off: a backend from before it runs the job
        for unit in body["controls"]:
            if unit["processor_res"] == -1:
                del unit["processor_res"]  # the default: a backend from before it runs the job
        if not self.attention_maps:
            del body["attention_maps"]  # likewise: only a job asking for maps carries it
        if self.mode is None or self.mode == self.implied_mode():
            del body["mode"]
        elif isinstance(self.mode, JobMode):
            body["mode"] = self.mode.value
        return body, arrays

    @classmethod
    def from_wire(cls, body: dict[str, Any], arrays: list[np.ndarray]) -> Job:
        """Inverse of to_wire; unknown fields are an error, not silently dropped. A body
        without `mode` leaves it None: validate() gives it the mode the fields imply."""

        def arr(v: Any) -> Any:
            if isinstance(v, dict) and set(v) == {"$array"}:
                idx = v["$array"]
                if not isinstance(idx, int) or not 0 <= idx < len(arrays):
                    raise DreamwireError(
                        ErrorCode.INVALID_JOB, f"array reference {idx!r} out of range"
                    )
                return arrays[idx]
            return v

        def build(kind: type, data: Any, where: str) -> Any:
            if not isinstance(data, dict):
                raise DreamwireError(
                    ErrorCode.INVALID_JOB, f"{where} must be an object ({kind.__name__})"
                )
            names = {f.name for f in dataclasses.fields(kind)}
            extra = set(data) - names
            if extra:
                raise DreamwireError(
                    ErrorCode.INVALID_JOB, f"unknown {kind.__name__} fields: {sorted(extra)}"
                )
            return data

        def items(name: str) -> list:
            value = data.get(name, [])
            if not isinstance(value, list):
                raise DreamwireError(ErrorCode.INVALID_JOB, f"{name} must be a list")
            return value

        try:
            data = dict(build(cls, body, "the job"))
            data["init_image"] = arr(data.get("init_image"))
            data["mask"] = arr(data.get("mask"))
            if "outpaint" in data:
                data["outpaint"] = Outpaint(**build(Outpaint, data["outpaint"], "outpaint"))
            if data.get("hires") is not None:
                data["hires"] = HiresFix(**build(HiresFix, data["hires"], "hires"))
            if data.get("upscale") is not None:
                data["upscale"] = Upscale(**build(Upscale, data["upscale"], "upscale"))
            if data.get("materials") is not None:
                data["materials"] = Materials(**build(Materials, data["materials"], "materials"))
            if data.get("animatediff") is not None:
                ad = dict(build(AnimateDiff, data["animatediff"], "animatediff"))
                controls = ad.get("controls", [])
                if not isinstance(controls, list):
                    raise DreamwireError(
                        ErrorCode.INVALID_JOB, "animatediff.controls must be a list"
                    )
                ad["controls"] = [
                    FrameControl(
                        **{
                            **build(FrameControl, c, f"animatediff.controls[{i}]"),
                            "images": [arr(x) for x in c.get("images", [])],
                        }
                    )
                    for i, c in enumerate(controls)
                ]
                data["animatediff"] = AnimateDiff(**ad)
            if data.get("segment") is not None:
                data["segment"] = segment_from_wire(data["segment"])
            if data.get("train_lora") is not None:
                data["train_lora"] = lora_training_from_wire(data["train_lora"], arr)
            data["controls"] = [
                ControlUnit(
                    **{**build(ControlUnit, c, f"controls[{i}]"), "image": arr(c.get("image"))}
                )
                for i, c in enumerate(items("controls"))
            ]
            data["loras"] = [
                LoraRef(**build(LoraRef, x, f"loras[{i}]")) for i, x in enumerate(items("loras"))
            ]
            data["regions"] = [
                Region(**{**build(Region, r, f"regions[{i}]"), "mask": arr(r.get("mask"))})
                for i, r in enumerate(items("regions"))
            ]
            return cls(**data)
        except TypeError as exc:
            raise DreamwireError(ErrorCode.INVALID_JOB, f"malformed job: {exc}") from None
