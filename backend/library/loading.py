"""Loading library entries into diffusers objects, offline and without unpickling code.

Single-file `.safetensors` checkpoints go through diffusers' `from_single_file` with the
catalog's config folder for their architecture and `local_files_only=True`, so nothing is
fetched from a hub. Diffusers folders load with `from_pretrained(local_files_only=True)`.
Pickled files are refused (see `dreamwire.backend.library.pickles`). Flux files (a
transformer alone, or ComfyUI's all-in-one) are assembled by `flux_loading`, SD3 files by
`sd3_loading`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library import prediction
from dreamwire.backend.library.catalog import pipeline_config_dir
from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.expected import missing_checkpoint_keys, missing_vae_keys
from dreamwire.backend.library.flux2_loading import load_flux2_pipeline
from dreamwire.backend.library.flux2_parts import Flux2Sources, is_flux2_file
from dreamwire.backend.library.flux2_parts import gather as gather_flux2
from dreamwire.backend.library.flux_loading import load_flux_pipeline
from dreamwire.backend.library.flux_parts import FluxSources, gather, is_flux_file
from dreamwire.backend.library.pickles import refuse_pickle
from dreamwire.backend.library.qwen_identify import is_qwen_file
from dreamwire.backend.library.qwen_loading import load_qwen_pipeline
from dreamwire.backend.library.qwen_parts import QwenSources
from dreamwire.backend.library.qwen_parts import gather as gather_qwen
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.backend.library.sd3_loading import load_sd3_pipeline
from dreamwire.backend.library.sd3_parts import Sd3Sources, is_sd3_file
from dreamwire.backend.library.sd3_parts import gather as gather_sd3
from dreamwire.backend.library.zimage_loading import load_zimage_pipeline
from dreamwire.backend.library.zimage_parts import ZImageSources, is_zimage_file
from dreamwire.backend.library.zimage_parts import gather as gather_zimage
from dreamwire.shared.errors import DreamwireError, ErrorCode


def pipeline_class(arch: str):
    import diffusers

    try:
        name = catalog.arch_info(arch)["pipeline"]
    except KeyError:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"architecture {arch!r} is not supported; known: {', '.join(catalog.archs())}",
        ) from None
    return getattr(diffusers, name)


def require_arch(entry: ModelEntry) -> str:
    if not entry.arch and "error" in entry.detail:
        # Unidentified because the scan could not read it: say why, not "unsupported".
        code = entry.detail.get("error_code", ErrorCode.MODEL_CORRUPT.value)
        raise DreamwireError(code, entry.detail["error"])
    if why := unsupported(entry):
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, why)
    if not entry.arch or entry.arch not in catalog.archs():
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{entry.name}: architecture {entry.arch or 'unknown'!r} cannot be loaded; "
            f"supported: {', '.join(a for a in catalog.archs() if not a.startswith('tiny'))}",
        )
    return entry.arch


def unsupported(entry: ModelEntry) -> str | None:
    """Why a checkpoint the library identified cannot run, or None: an architecture it
    only recognises (Flux.2 dev/9B)."""
    if title := catalog.recognised(entry.arch):
        return (
            f"{entry.name} is a {title} model, which Dreamwire recognises but does not run "
            "yet; use Flux.2 Klein 4B, a Flux.1 or a Z-Image model"
        )
    return None


@contextlib.contextmanager
def _load_errors(entry: ModelEntry):
    """Turn library exceptions from a damaged file into MODEL_CORRUPT with the file's name."""
    try:
        yield
    except DreamwireError:
        raise
    except Exception as exc:  # diffusers raises many types for a bad file; the file is the cause
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{entry.name} ({entry.path.name}) could not be loaded: {exc}"
        ) from exc


def load_pipeline(
    entry: ModelEntry,
    torch_dtype=None,
    flux: FluxSources | None = None,
    sd3: Sd3Sources | None = None,
    zimage: ZImageSources | None = None,
    qwen: QwenSources | None = None,
    flux2: Flux2Sources | None = None,
):
    """A StableDiffusionPipeline / StableDiffusionXLPipeline / FluxPipeline /
    StableDiffusion3Pipeline / ZImagePipeline / Qwen-Image pipeline for a checkpoint entry. A
    Flux, SD3, Z-Image or Qwen-Image single file takes its text encoders and VAE from `flux` /
    `sd3` / `zimage` / `qwen` (the library
    gathers them); without them, only a file holding every part loads."""
    if entry.kind != Kind.CHECKPOINT:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH, f"{entry.name} is a {entry.kind.value}, not a checkpoint"
        )
    if entry.format == Format.PICKLE:
        refuse_pickle(entry.path)
    places = [entry.root] if entry.root else []
    if is_flux_file(entry):
        return _assembled(
            entry, load_flux_pipeline, flux or gather(entry, places=places), torch_dtype
        )
    if is_sd3_file(entry):
        sources = sd3 or gather_sd3(entry, places=places)
        return _assembled(entry, load_sd3_pipeline, sources, torch_dtype)
    if is_zimage_file(entry):
        sources = zimage or gather_zimage(entry, places=places)
        return _assembled(entry, load_zimage_pipeline, sources, torch_dtype)
    if is_qwen_file(entry):
        sources = qwen or gather_qwen(entry, places=places)
        return _assembled(entry, load_qwen_pipeline, sources, torch_dtype)
    if is_flux2_file(entry):
        require_arch(entry)  # Klein 9B's and Flux.2 dev's files are refused by name
        sources = flux2 or gather_flux2(entry, places=places)
        return _assembled(entry, load_flux2_pipeline, sources, torch_dtype)
    arch = require_arch(entry)
    cls = pipeline_class(arch)
    kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if entry.format == Format.DIFFUSERS:
        kwargs |= _folder_kwargs(cls, entry.path)
        with _load_errors(entry), _quiet():
            pipe = cls.from_pretrained(str(entry.path), local_files_only=True, **kwargs)
        _check_no_meta(entry, pipe)
        return pipe
    header = read_header(entry.path)  # a damaged file fails here with MODEL_CORRUPT, cheaply
    _require_keys(entry, missing_checkpoint_keys(arch, header.tensors))
    config = pipeline_config_dir(arch)
    with _load_errors(entry), _quiet():
        kwargs |= _old_spelling_text_encoders(entry, header, config, torch_dtype)
        pipe = cls.from_single_file(
            str(entry.path), config=str(config), local_files_only=True, **kwargs
        )
    _check_no_meta(entry, pipe)
    # A v-prediction SDXL file says so only by its marker keys (prediction.py): the arch's
    # config is epsilon's.
    overrides = prediction.Prediction.from_detail(entry.detail).scheduler_overrides()
    if overrides:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **overrides)
    return pipe


def _assembled(entry: ModelEntry, load, sources, torch_dtype):
    """A pipeline built from a transformer file and the other files `sources` names."""
    with _load_errors(entry), _quiet():
        pipe = load(entry, sources, torch_dtype)
    _check_no_meta(entry, pipe)
    return pipe


_OLD_CLIP_PREFIXES = {
    "cond_stage_model.transformer.": "text_encoder",
    "conditioner.embedders.0.transformer.": "text_encoder",
}


def _old_spelling_text_encoders(entry: ModelEntry, header, config: Path, torch_dtype) -> dict:
    """Checkpoints saved with older transformers store the CLIP text model one level up
    (`cond_stage_model.transformer.embeddings.*`, no `text_model.`). A1111 renames those
    keys on load; diffusers does not recognise them, so that encoder is built here."""
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel

    found = {}
    for prefix, component in _OLD_CLIP_PREFIXES.items():
        marker = prefix + "embeddings.position_embedding.weight"
        if marker not in header.tensors:
            continue
        model = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / component)))
        wrapped = any(k.startswith("text_model.") for k in model.state_dict())
        state = {}
        with safe_open(str(entry.path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                if key.startswith(prefix) and not key.endswith("position_ids"):
                    name = key[len(prefix) :]
                    state[("text_model." if wrapped else "") + name] = f.get_tensor(key)
        model.load_state_dict(state, strict=True)
        if torch_dtype is not None:
            model.to(torch_dtype)
        found[component] = model.eval()
    return found


def _folder_kwargs(cls, folder) -> dict:
    """Options a diffusers folder needs: no safety checker (A1111 has none, and it would be a
    second download-sized model), and the fp16 variant when only that one was saved."""
    import inspect

    kwargs: dict = {}
    if "safety_checker" in inspect.signature(cls.__init__).parameters:
        kwargs |= {
            "safety_checker": None,
            "feature_extractor": None,
            "requires_safety_checker": False,
        }
    if (
        "processor" in inspect.signature(cls.__init__).parameters
        and (folder / "processor").is_dir()
    ):
        # Qwen-Image-Edit: built here, as transformers cannot build it without torchvision.
        from dreamwire.backend.library.qwen_processor import load_processor

        kwargs["processor"] = load_processor(folder / "processor")
    unet = folder / "unet"
    names = {p.name for p in unet.iterdir()} if unet.is_dir() else set()
    plain = {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"}
    if not names & plain and any(n.startswith("diffusion_pytorch_model.fp16.") for n in names):
        kwargs["variant"] = "fp16"
    return kwargs


def vae_config_arch(entry: ModelEntry, for_arch: str | None = None) -> str:
    """Which catalog VAE config a VAE file loads with: the pipeline's own architecture when
    the sizes agree (its scaling factor is the right one), else the generic one."""
    tiny = entry.arch == "tiny-vae"
    if for_arch and for_arch in catalog.archs() and for_arch.startswith("tiny") == tiny:
        return for_arch
    return "tiny-sd1" if tiny else "sd1"


def load_vae(entry: ModelEntry, for_arch: str | None = None, torch_dtype=None):
    """An AutoencoderKL from an A1111 VAE file (or a diffusers VAE folder)."""
    from diffusers import AutoencoderKL

    if entry.kind != Kind.VAE:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH, f"{entry.name} is a {entry.kind.value}, not a VAE"
        )
    if entry.format == Format.PICKLE:
        refuse_pickle(entry.path)
    kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    if entry.format == Format.DIFFUSERS:
        with _load_errors(entry), _quiet():
            return AutoencoderKL.from_pretrained(str(entry.path), local_files_only=True, **kwargs)
    header = read_header(entry.path)
    if entry.arch is None:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"{entry.name} does not look like a VAE file"
        )
    config_arch = vae_config_arch(entry, for_arch)
    _require_keys(entry, missing_vae_keys(config_arch, header.tensors))
    config = pipeline_config_dir(config_arch)
    with _load_errors(entry), _quiet():
        vae = AutoencoderKL.from_single_file(
            str(entry.path), config=str(config), subfolder="vae", local_files_only=True, **kwargs
        )
    _check_no_meta(entry, vae)
    return vae


def _require_keys(entry: ModelEntry, missing: list[str]) -> None:
    if missing:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{entry.name} ({entry.path.name}) lacks {len(missing)} tensors its architecture "
            f"({entry.arch}) needs, e.g. {', '.join(missing[:3])}",
        )


def _check_no_meta(entry: ModelEntry, obj) -> None:
    """from_single_file leaves weights a file lacks on the meta device instead of failing;
    a checkpoint missing tensors is damaged, so say so now rather than at the first step."""
    import torch

    modules = obj.components.values() if hasattr(obj, "components") else [obj]
    for module in modules:
        if isinstance(module, torch.nn.Module):
            # Buffers too: a non-persistent one (CLIP's position_ids) is in no file, and a
            # model built on the meta device keeps it there.
            tensors = [*module.state_dict().items(), *module.named_buffers()]
            for name, tensor in tensors:
                if tensor.is_meta:
                    raise DreamwireError(
                        ErrorCode.MODEL_CORRUPT,
                        f"{entry.name} ({entry.path.name}) lacks weights, e.g. {name}",
                    )


@contextlib.contextmanager
def _quiet():
    """diffusers logs a progress bar and warnings per component; the engine reports progress."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    levels = dlogging.get_verbosity(), tlogging.get_verbosity()
    dlogging.set_verbosity_error()
    tlogging.set_verbosity_error()
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    try:
        yield
    finally:
        dlogging.set_verbosity(levels[0])
        tlogging.set_verbosity(levels[1])
        dlogging.enable_progress_bar()
        tlogging.enable_progress_bar()
