"""IP-Adapter files and the CLIP vision encoders they read, identified from their shapes.

IP-Adapter weights come as one .safetensors file in the layout A1111's ControlNet extension
and ComfyUI IPAdapter read (h94/IP-Adapter's `ip-adapter_sd15.safetensors`, ...): two
groups of weights,

  * ``image_proj.*``   the image projection:
      plain  ``proj.weight`` (tokens x cross-attention width, CLIP embedding width) and
             ``norm.*``: reads the encoder's projected image embedding (CLIP ViT-H: 1024,
             ViT-bigG: 1280);
      plus   a perceiver resampler (``latents``, ``proj_in``, ``layers.*``, ``proj_out``,
             ``norm_out``): reads the encoder's penultimate hidden states (ViT-H: 1280,
             ViT-bigG: 1664 wide);
  * ``ip_adapter.<n>.to_k_ip/to_v_ip.weight``  one pair per cross-attention layer of the
    UNet, n = 1, 3, 5, ... in the order of the UNet's attention processors.

The base model follows from the cross-attention width (SD1.x 768, SD2.x 1024, SDXL 2048).
Variants needing more than a CLIP encoder (FaceID: insightface; full-face, its 257 tokens
and its MLP projection) and pickles (.bin) are refused.

CLIP vision encoders are read from ``clip_vision`` folders (ComfyUI's ``models/clip_vision``)
as .safetensors in transformers' CLIPVisionModelWithProjection key layout; their
architecture comes from the shapes (ViT-H/14: 1280 wide, ViT-bigG/14: 1664 wide).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.families import label_for_width
from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import files
from .unit_file import UnitFile

# (hidden width, projection width) -> the encoder's usual name, and the attention heads a
# width implies (heads do not show in the shapes).
ENCODER_NAMES = {
    (1280, 1024): "CLIP ViT-H/14",
    (1664, 1280): "CLIP ViT-bigG/14",
    (1024, 768): "CLIP ViT-L/14",
}
ENCODER_FILES = {
    "CLIP ViT-H/14": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    "CLIP ViT-bigG/14": "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors",
}
HEADS = {1280: 16, 1664: 16, 1024: 16, 768: 12}
# A1111's IP-Adapter preprocessors and the encoder each runs.
PREPROCESSOR_ENCODERS = {
    "ip-adapter_clip_sd15": "CLIP ViT-H/14",
    "ip-adapter_clip_h": "CLIP ViT-H/14",
    "ip-adapter_clip_sdxl_plus_vith": "CLIP ViT-H/14",
    "ip-adapter_clip_sdxl": "CLIP ViT-bigG/14",
    "ip-adapter_clip_g": "CLIP ViT-bigG/14",
    "ip-adapter_clip_bigg": "CLIP ViT-bigG/14",
}
PREPROCESSORS = ("none", "", "ip-adapter-auto", *PREPROCESSOR_ENCODERS)
CLIP_VISION_FOLDERS = ("clip_vision",)


def is_ip_adapter(keys) -> bool:
    keys = list(keys)
    return any(k.startswith("image_proj.") for k in keys) and any(
        k.startswith("ip_adapter.") for k in keys
    )


@dataclass(frozen=True)
class IPAdapterFile:
    plus: bool
    cross_dim: int  # the UNet's cross-attention width it was made for
    tokens: int  # image tokens added to each cross-attention
    layers: int  # cross-attention layers it feeds
    # What it reads from the encoder: the projected embedding (plain) or the penultimate
    # hidden states (plus), and that width.
    reads: str  # "image_embeds" | "hidden_states"
    input_dim: int

    @property
    def family(self) -> str:
        return label_for_width(self.cross_dim) or f"a {self.cross_dim}-wide model"

    @property
    def encoder_label(self) -> str:
        """The encoder it needs, by name when it is a known one."""
        for (hidden, proj), name in ENCODER_NAMES.items():
            if (self.reads == "image_embeds" and proj == self.input_dim) or (
                self.reads == "hidden_states" and hidden == self.input_dim
            ):
                return name
        what = "projection" if self.reads == "image_embeds" else "hidden width"
        return f"a CLIP vision encoder with {what} {self.input_dim}"


@dataclass(kw_only=True)
class IPAdapterInfo(UnitFile):
    """An IP-Adapter in the ControlNet (or ipadapter) folders; `ip_adapter` is None for a
    pickle, which is refused unread."""

    ip_adapter: IPAdapterFile | None

    @property
    def family(self) -> str:
        return self.ip_adapter.family if self.ip_adapter is not None else "an unread model"


def inspect_shapes(shapes: dict[str, tuple[int, ...]], name: str) -> IPAdapterFile:
    proj = {
        k.removeprefix("image_proj."): v for k, v in shapes.items() if k.startswith("image_proj.")
    }
    ip = {
        k.removeprefix("ip_adapter."): v for k, v in shapes.items() if k.startswith("ip_adapter.")
    }
    if any("lora" in k for k in ip) or any(k.startswith("perceiver_resampler") for k in proj):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"IP-Adapter {name} is a FaceID model (it needs insightface face embeddings); "
            "Dreamwire runs the plain and plus IP-Adapters",
        )
    if "proj.3.weight" in proj or "proj.0.weight" in proj:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"IP-Adapter {name} is a full-face model; Dreamwire runs the plain and plus "
            "IP-Adapters",
        )
    layers = sorted({int(m[1]) for k in ip if (m := re.fullmatch(r"(\d+)\.to_k_ip\.weight", k))})
    if not layers or any(f"{n}.to_v_ip.weight" not in ip for n in layers):
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"IP-Adapter {name} has no to_k_ip/to_v_ip")
    if layers != list(range(1, 2 * len(layers), 2)):
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"IP-Adapter {name}: layer numbers are not 1, 3, 5, ..."
        )
    cross = int(ip[f"{layers[0]}.to_k_ip.weight"][1])
    try:
        if "proj.weight" in proj:
            width = int(proj["norm.weight"][0])
            tokens = int(proj["proj.weight"][0]) // width
            # diffusers' loader gives plain adapters 4 tokens, as h94 trained them all.
            if tokens != 4 or width != cross:
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"IP-Adapter {name}: {tokens} image tokens of width {width} (plain "
                    "IP-Adapters have 4 of the cross-attention width)",
                )
            return IPAdapterFile(
                False, cross, 4, len(layers), "image_embeds", int(proj["proj.weight"][1])
            )
        if "latents" in proj:
            tokens = int(proj["latents"][1])
            if int(proj["proj_out.weight"][0]) != cross:
                raise DreamwireError(
                    ErrorCode.MODEL_CORRUPT, f"IP-Adapter {name}: proj_out is not {cross} wide"
                )
            return IPAdapterFile(
                True, cross, tokens, len(layers), "hidden_states", int(proj["proj_in.weight"][1])
            )
    except KeyError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"IP-Adapter {name} lacks image_proj.{exc.args[0]}"
        ) from None
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED, f"IP-Adapter {name}: unknown image projection"
    )


def mismatch(adapter: IPAdapterFile, unet) -> list[str]:
    """Why the adapter cannot go into this UNet (empty when it can)."""
    cross = unet.config.cross_attention_dim
    cross = cross[0] if isinstance(cross, list | tuple) else cross
    problems = []
    if adapter.cross_dim != cross:
        problems.append(f"cross-attention width {adapter.cross_dim} vs {cross}")
    layers = sum(1 for n in unet.attn_processors if n.endswith("attn2.processor"))
    if adapter.layers != layers:
        problems.append(f"{adapter.layers} cross-attention layers vs {layers}")
    return problems


# --- CLIP vision encoders -----------------------------------------------------------


@dataclass(frozen=True)
class EncoderFile:
    name: str
    path: Path
    hidden: int
    projection: int
    layers: int
    intermediate: int
    image_size: int
    patch_size: int

    @property
    def label(self) -> str:
        return ENCODER_NAMES.get((self.hidden, self.projection), f"CLIP vision {self.name}")

    def serves(self, adapter: IPAdapterFile) -> bool:
        if adapter.reads == "image_embeds":
            return self.projection == adapter.input_dim
        return self.hidden == adapter.input_dim

    def config(self):
        from transformers import CLIPVisionConfig

        heads = HEADS.get(self.hidden)
        if heads is None:
            if self.hidden % 64:
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"CLIP vision encoder {self.name}: width {self.hidden} is not a known "
                    "encoder's and not a multiple of 64 (heads cannot be told)",
                )
            heads = self.hidden // 64
        return CLIPVisionConfig(
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            projection_dim=self.projection,
            num_hidden_layers=self.layers,
            num_attention_heads=heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_act="gelu",  # the LAION ViT-H and ViT-bigG (OpenAI's ViT-L is not used)
            layer_norm_eps=1e-5,
        )


def inspect_encoder(path: Path, name: str | None = None) -> EncoderFile:
    path = Path(path)
    name = name or path.stem
    if path.suffix.lower() != ".safetensors":
        from dreamwire.backend.library.pickles import refuse_pickle

        refuse_pickle(path)
    s = files.shapes(path)
    pre = "vision_model."
    try:
        patch = s[pre + "embeddings.patch_embedding.weight"]
        positions = s[pre + "embeddings.position_embedding.weight"][0]
        layers = {
            int(m[1])
            for k in s
            if (m := re.fullmatch(r"vision_model\.encoder\.layers\.(\d+)\..+", k))
        }
        fc1 = s[pre + "encoder.layers.0.mlp.fc1.weight"]
        projection = s["visual_projection.weight"]
    except KeyError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"CLIP vision encoder {path.name} is not in transformers' CLIPVisionModelWithProjection "
            f"layout (no {exc.args[0]}); use ComfyUI's models/clip_vision files",
        ) from None
    side = round((positions - 1) ** 0.5)
    return EncoderFile(
        name=name,
        path=path,
        hidden=int(patch[0]),
        projection=int(projection[0]),
        layers=len(layers),
        intermediate=int(fc1[0]),
        image_size=side * int(patch[2]),
        patch_size=int(patch[2]),
    )


def encoder_folders(roots) -> list[Path]:
    """`clip_vision` folders of the library's roots (the root or its `models` folder)."""
    from dreamwire.backend.library.scan import child_folder

    found = []
    for root in roots:
        root = Path(root).expanduser()
        for base in (child_folder(root, "models"), root):
            if base is None:
                continue
            for name in CLIP_VISION_FOLDERS:
                folder = child_folder(base, name)
                if folder is not None and folder not in found:
                    found.append(folder)
    return found


def encoder_files(roots) -> list[Path]:
    out = []
    for folder in encoder_folders(roots):
        out += sorted(p for p in folder.rglob("*.safetensors") if p.is_file())
    return out


def pick_encoder(adapter: IPAdapterFile, name: str, roots, preprocessor: str = "") -> EncoderFile:
    """The encoder from the clip_vision folders that feeds `adapter`; MODEL_NOT_FOUND naming
    the one it needs when none does."""
    wanted = PREPROCESSOR_ENCODERS.get(preprocessor)
    if (
        wanted is not None
        and adapter.encoder_label in ENCODER_FILES
        and wanted != adapter.encoder_label
    ):
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"IP-Adapter {name} reads {adapter.encoder_label} embeddings, but preprocessor "
            f"{preprocessor} runs {wanted}; pick the preprocessor for {adapter.encoder_label}",
        )
    seen = []
    for path in encoder_files(roots):
        try:
            enc = inspect_encoder(path)
        except DreamwireError:
            continue
        seen.append(f"{path.name} ({enc.label})")
        if enc.serves(adapter):
            return enc
    needed = adapter.encoder_label
    file = ENCODER_FILES.get(needed)
    raise DreamwireError(
        ErrorCode.MODEL_NOT_FOUND,
        f"IP-Adapter {name} needs the {needed} image encoder"
        + (f" ({file})" if file else "")
        + " in a models/clip_vision folder (transformers' .safetensors layout, as ComfyUI "
        "keeps it; A1111's clip_h.pth/clip_g.pth pickles are not loaded); found: "
        + (", ".join(seen) or "none"),
    )


def load_encoder(enc: EncoderFile, dtype, device):
    """A transformers CLIPVisionModelWithProjection on `device`, from the file alone."""
    from transformers import CLIPVisionModelWithProjection

    state = files.load_tensors(enc.path, "CLIP vision encoder")
    model = CLIPVisionModelWithProjection(enc.config())
    files.load_weights(model, state, f"CLIP vision encoder {enc.path.name}")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_adapter(path: Path, name: str) -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}}: the split diffusers' loader takes."""
    state = files.load_tensors(path, "IP-Adapter")
    out: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in state.items():
        group, _, rest = key.partition(".")
        if group not in out:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"IP-Adapter {name}: unexpected weight {key!r}"
            )
        out[group][rest] = value
    return out
