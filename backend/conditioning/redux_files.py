"""Flux Redux's files: the Redux image embedder and the SigLIP image encoder it reads.

ComfyUI keeps them as `models/style_models/flux1-redux-dev.safetensors` (diffusers'
ReduxImageEncoder weights: `redux_up` SigLIP width -> 3 x T5 width, `redux_down` -> T5
width) and `models/clip_vision/sigclip_vision_patch14_384.safetensors` (transformers'
SiglipVisionModel keys under `vision_model.`, as comfy/clip_vision.py reads it); the library
lists them as the style_model and clip_vision kinds (library/vision_identify.py).

The SigLIP image processor is built from its known configuration (google/siglip-so400m-
patch14-384's, which FLUX.1-Redux-dev ships as its feature_extractor): a bicubic resize to
the encoder's square input, 1/255 rescale, mean and std 0.5; never fetched from a hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library import Kind
from dreamwire.backend.library.vision_identify import SIGLIP_PREFIX, is_siglip
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.model_names import strip_suffix

from . import files
from .unit_file import UnitFile

REDUX_FILE = "flux1-redux-dev.safetensors"
SIGLIP_FILE = "sigclip_vision_patch14_384.safetensors"
# Attention heads do not show in the shapes: SigLIP so400m has 16 of width 72; other widths
# (SigLIP base 768, large 1024, the tiny test encoder) have heads of 64.
_HEADS = {1152: 16}


@dataclass(kw_only=True)
class ReduxInfo(UnitFile):
    """A Flux Redux embedder in the style_models folders."""

    siglip_width: int  # the SigLIP hidden width it reads
    t5_width: int  # the width of the tokens it makes: the transformer's joint_attention_dim

    @property
    def family(self) -> str:
        return "Flux.1"


@dataclass(frozen=True)
class SiglipFile:
    name: str
    path: Path
    width: int
    layers: int
    intermediate: int
    image_size: int
    patch_size: int
    head: bool  # the file carries the pooling head (unused: Redux reads the hidden states)

    def config(self):
        from transformers import SiglipVisionConfig

        heads = _HEADS.get(self.width, max(self.width // 64, 1))
        return SiglipVisionConfig(
            hidden_size=self.width,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            vision_use_head=self.head,
        )


def inspect_redux(path: Path, name: str) -> ReduxInfo:
    s = files.shapes(path)
    up, down = s.get("redux_up.weight"), s.get("redux_down.weight")
    if up is None or down is None or len(up) != 2 or len(down) != 2 or down[1] != up[0]:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"style model {name} is not a Flux Redux embedder (no redux_up/redux_down); "
            f"Flux reference units need {REDUX_FILE}",
        )
    return ReduxInfo(
        name=name, path=Path(path), type="ip-adapter", siglip_width=up[1], t5_width=down[0]
    )


def inspect_siglip(path: Path, name: str) -> SiglipFile:
    s = files.shapes(path)
    pre = SIGLIP_PREFIX
    try:
        patch = s[pre + "embeddings.patch_embedding.weight"]
        positions = s[pre + "embeddings.position_embedding.weight"][0]
        fc1 = s[pre + "encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{name} is not a SigLIP vision encoder in ComfyUI's clip_vision layout "
            f"(no {exc.args[0]})",
        ) from None
    layers = {
        int(m[1]) for k in s if (m := re.fullmatch(r"vision_model\.encoder\.layers\.(\d+)\..+", k))
    }
    side = round(positions**0.5)  # no class token: the position table is the patch grid
    return SiglipFile(
        name=name,
        path=Path(path),
        width=int(patch[0]),
        layers=len(layers),
        intermediate=int(fc1[0]),
        image_size=side * int(patch[2]),
        patch_size=int(patch[2]),
        head=any(k.startswith(pre + "head.") for k in s),
    )


def _entries(library, kind: Kind):
    return library.entries(kind) if library is not None else []


def pick_redux(library, model_name: str, t5_width: int, where: str) -> ReduxInfo:
    """The unit's Redux file: the one it names, else the first that makes tokens of the
    transformer's text width."""
    entries = _entries(library, Kind.STYLE_MODEL)
    if model_name:
        wanted = {model_name, strip_suffix(model_name)}
        named = [e for e in entries if e.name in wanted]
        if not named:
            raise DreamwireError(
                ErrorCode.CONTROLNET_NOT_FOUND,
                f"{where}: Flux Redux {model_name!r} not found in models/style_models; "
                f"available: {', '.join(e.name for e in entries) or 'none'}",
            )
        info = inspect_redux(named[0].path, named[0].name)
    else:
        found = [inspect_redux(e.path, e.name) for e in entries if e.arch and "redux" in e.arch]
        fits = [f for f in found if f.t5_width == t5_width]
        if not fits:
            raise DreamwireError(
                ErrorCode.CONTROLNET_NOT_FOUND,
                f"{where}: a reference unit on a Flux.1 model runs Flux Redux: put "
                f"{REDUX_FILE} in models/style_models (found: "
                f"{', '.join(f'{f.name} ({f.t5_width} wide)' for f in found) or 'none'})",
            )
        info = fits[0]
    if info.t5_width != t5_width:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{where}: Flux Redux {info.name} makes {info.t5_width}-wide tokens, the model's "
            f"text width is {t5_width}",
        )
    return info


def pick_siglip(library, redux: ReduxInfo, where: str) -> SiglipFile:
    """The SigLIP encoder Redux reads, from the clip_vision folders; MODEL_PART_MISSING
    naming the file when there is none of its width."""
    seen = []
    for entry in _entries(library, Kind.CLIP_VISION):
        if not is_siglip(entry.arch):
            continue
        enc = inspect_siglip(entry.path, entry.name)
        if enc.width == redux.siglip_width:
            return enc
        seen.append(f"{entry.name} ({enc.width} wide)")
    raise DreamwireError(
        ErrorCode.MODEL_PART_MISSING,
        f"{where}: Flux Redux {redux.name} needs the SigLIP vision encoder: put {SIGLIP_FILE} "
        f"in models/clip_vision (found: {', '.join(seen) or 'no SigLIP encoder'})",
    )


def load_siglip(enc: SiglipFile, dtype, device):
    """A transformers SiglipVisionModel from the file alone."""
    from transformers import SiglipVisionModel

    state = files.load_tensors(enc.path, "SigLIP vision encoder")
    state = {k.removeprefix(SIGLIP_PREFIX): v for k, v in state.items()}
    model = SiglipVisionModel(enc.config())
    files.load_weights(model, state, f"SigLIP vision encoder {enc.path.name}")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_redux(info: ReduxInfo, dtype, device):
    """diffusers' ReduxImageEncoder with the file's weights."""
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder

    state = files.load_tensors(info.path, "Flux Redux")
    model = ReduxImageEncoder(redux_dim=info.siglip_width, txt_in_features=info.t5_width)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"Flux Redux {info.path.name}: {exc}"
        ) from None
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def image_processor(enc: SiglipFile):
    """SiglipImageProcessor with SigLIP's released preprocessing at the encoder's size."""
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(
        do_resize=True,
        size={"height": enc.image_size, "width": enc.image_size},
        resample=3,  # PIL bicubic
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def resolve_unit(query, unit, where: str) -> tuple[ReduxInfo, SiglipFile]:
    """A Flux reference unit's Redux file and SigLIP encoder, checked against the model
    (`query`: engine.unit_planning.UnitQuery, the transformer's config read from files)."""
    from .ip_adapter_files import PREPROCESSORS

    if unit.type != "ip-adapter":
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: Flux.1 models run reference units (ip-adapter) with Flux Redux; its "
            "Style/Composition modes are IP-Adapter block maps of SD's UNet",
        )
    if unit.preprocessor not in PREPROCESSORS:
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE,
            f"{where}: preprocessor {unit.preprocessor!r} is not a reference one; known: "
            f"{', '.join(p for p in PREPROCESSORS if p)}",
        )
    t5_width = int(query.model.denoiser_config["joint_attention_dim"])
    info = pick_redux(query.library, unit.model, t5_width, where)
    return info, pick_siglip(query.library, info, where)


def served(library) -> tuple[str | None, str]:
    """For the welcome: ("<redux> + <siglip>", "") when a Flux reference unit naming no
    model would find both files (whatever the transformer's width), else (None, why)."""
    why = f"no Flux Redux ({REDUX_FILE}) in models/style_models"
    for entry in _entries(library, Kind.STYLE_MODEL):
        if not entry.arch or "redux" not in entry.arch:
            continue
        try:
            info = inspect_redux(entry.path, entry.name)
            enc = pick_siglip(library, info, "reference unit")
        except DreamwireError as exc:
            why = exc.message
            continue
        return f"{info.name} + {enc.name}", ""
    return None, why


def style_model_files(library) -> list[Path]:
    """The style models' paths (the welcome's cache key)."""
    return [Path(e.path) for e in _entries(library, Kind.STYLE_MODEL)]
