"""Select subject: the picture's subject as a soft mask, by the background-removal models
rembg runs (U2-Net, IS-Net, BiRefNet, BRIA RMBG), from the ONNX files artists already have,
run with onnxruntime.

Files are looked for, per model root, in ComfyUI's models/rembg/ (where its rembg nodes
point U2NET_HOME), A1111's models/u2net/ (its rembg extension's U2NET_HOME) and annotators/;
then rembg's own folder ($U2NET_HOME, else $XDG_DATA_HOME/.u2net, else ~/.u2net) and
Dreamwire's annotator folder. A file is known by rembg's name for it (u2net.onnx, as rembg
saves it) or by its release name (BiRefNet-general-epoch_244.onnx); other .onnx files there
(u2net_cloth_seg, SAM's) are not background-removal models of this kind and are passed by.

The run is rembg's session `predict` for the model, step for step:
  RGB picture -> Lanczos resize to the model's square side (PIL) -> divided by its own
  largest value (not 255: rembg's BaseSession.normalize) -> minus mean, over std, per
  channel (float64, then float32) -> the first input; the first output's channel 0
  (BiRefNet: through a sigmoid) -> min-max normalised to 0..1 -> x 255, truncated to uint8
  -> Lanczos resize back to the picture's size (PIL, mode L).
The per-model side, mean and std are rembg's sessions' (RECIPES). A prediction that is the
same everywhere has no subject: rembg divides 0 by 0 there; the mask is empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.backend import onnx_sessions
from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode

COMFY_REMBG = Path("models/rembg")
A1111_U2NET = Path("models/u2net")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT_STD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Recipe:
    """How rembg feeds one model and reads its answer."""

    family: str
    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool = False  # BiRefNet's output is logits


U2NET = Recipe("U2-Net", 320, IMAGENET_MEAN, IMAGENET_STD)
# rembg changed IS-Net general-use's mean to 0.5 in March 2025 ("fix DIS normalization
# values"); anime kept ImageNet's.
ISNET_GENERAL = Recipe("IS-Net", 1024, (0.5, 0.5, 0.5), UNIT_STD)
ISNET_ANIME = Recipe("IS-Net", 1024, IMAGENET_MEAN, UNIT_STD)
BIREFNET = Recipe("BiRefNet", 1024, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True)
BRIA = Recipe("BRIA RMBG", 1024, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class Known:
    name: str  # rembg's session name, and the file name rembg saves it under (+ .onnx)
    release: str  # the file's name on rembg's release page, without .onnx
    recipe: Recipe


# In the order taken when a job names none: general-purpose models first, best first;
# then the specialised ones (anime, portraits, people, the DIS/HRSOD/COD trainings).
KNOWN = (
    Known("birefnet-general", "BiRefNet-general-epoch_244", BIREFNET),
    Known("isnet-general-use", "isnet-general-use", ISNET_GENERAL),
    Known("birefnet-general-lite", "BiRefNet-general-bb_swin_v1_tiny-epoch_232", BIREFNET),
    Known("u2net", "u2net", U2NET),
    Known("silueta", "silueta", U2NET),
    Known("u2netp", "u2netp", U2NET),
    Known("bria-rmbg", "bria-rmbg-2.0", BRIA),
    Known("birefnet-massive", "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420", BIREFNET),
    Known("isnet-anime", "isnet-anime", ISNET_ANIME),
    Known("birefnet-portrait", "BiRefNet-portrait-epoch_150", BIREFNET),
    Known("u2net_human_seg", "u2net_human_seg", U2NET),
    Known("birefnet-dis", "BiRefNet-DIS-epoch_590", BIREFNET),
    Known("birefnet-hrsod", "BiRefNet-HRSOD_DHU-epoch_115", BIREFNET),
    Known("birefnet-cod", "BiRefNet-COD-epoch_125", BIREFNET),
)
# What the refusal tells the artist to add.
WANTED = (
    "birefnet-general.onnx, isnet-general-use.onnx, u2net.onnx or u2netp.onnx (rembg's, "
    "from github.com/danielgatis/rembg/releases)"
)


@dataclass(frozen=True)
class SubjectModel:
    path: Path
    known: Known


def rembg_home() -> Path:
    """rembg's own model folder, as rembg's BaseSession.u2net_home works it out."""
    if env := os.environ.get("U2NET_HOME"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME", "~")).expanduser() / ".u2net"


def search_folders(roots: Iterable[Path | str] = ()) -> list[Path]:
    folders = []
    for root in roots:
        root = Path(root)
        folders += [root / COMFY_REMBG, root / A1111_U2NET, root / "annotators"]
    return [*folders, rembg_home(), annotator_files.annotator_dir()]


def identify(path: Path) -> Known | None:
    """The model a file is, by rembg's name or its release name (any case)."""
    stem = path.stem.lower()
    for known in KNOWN:
        if stem in (known.name.lower(), known.release.lower()):
            return known
    return None


def _named(model: SubjectModel, name: str) -> bool:
    """Whether a job's model name means this file: its name, its stem, or rembg's name."""
    want = name.lower()
    return want in (model.path.name.lower(), model.path.stem.lower(), model.known.name.lower())


def found(roots: Iterable[Path | str] = ()) -> list[SubjectModel]:
    """Every known model file in the search folders, in KNOWN's order, then the folders'."""
    out = []
    for folder in search_folders(roots):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            known = identify(path) if path.suffix.lower() == ".onnx" else None
            if known is not None and path.is_file():
                out.append(SubjectModel(path, known))
    return sorted(out, key=lambda m: KNOWN.index(m.known))  # stable: folder order kept


def find(roots: Iterable[Path | str] = (), name: str = "") -> SubjectModel:
    """The model to run (named `name`, if given); DreamwireError `model_not_found` naming
    the files to add and every folder looked in when there is none."""
    models = found(roots)
    for model in models:
        if not name or _named(model, name):
            return model
    folders = search_folders(roots)
    what = f"a model named {name!r} ({', '.join(k.name for k in KNOWN)})" if name else WANTED
    raise DreamwireError(
        ErrorCode.MODEL_NOT_FOUND,
        f"select subject needs a background-removal model: {what} in one of: "
        + "; ".join(str(f) for f in folders),
    )


def model_input(rgb: np.ndarray, recipe: Recipe) -> np.ndarray:
    """1 x 3 x side x side float32, as rembg's BaseSession.normalize makes it."""
    from PIL import Image

    side = recipe.side
    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3])).convert("RGB")
    arr = np.asarray(im.resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)
    arr = arr / max(float(arr.max()), 1e-6)
    arr = (arr - np.array(recipe.mean)) / np.array(recipe.std)
    return arr.transpose(2, 0, 1)[None].astype(np.float32)


def mask_from_output(output: np.ndarray, recipe: Recipe, size: tuple[int, int]) -> np.ndarray:
    """H x W uint8 (`size` H x W) from the model's first output (N x C x h x w), as rembg's
    sessions' predict turns it into a mask."""
    from PIL import Image

    pred = np.asarray(output)[:, 0, :, :]
    if recipe.sigmoid:
        pred = 1 / (1 + np.exp(-pred))
    hi, lo = np.max(pred), np.min(pred)
    if not hi > lo:  # nothing stands out (rembg: 0 / 0)
        return np.zeros(size, np.uint8)
    pred = np.squeeze((pred - lo) / (hi - lo))
    mask = Image.fromarray((pred.clip(0, 1) * 255).astype(np.uint8), mode="L")
    h, w = size
    return np.asarray(mask.resize((w, h), Image.Resampling.LANCZOS))


def session(model: SubjectModel):
    return onnx_sessions.cached(model.path, f"select subject ({model.path.name})")


def predict(model: SubjectModel, rgb: np.ndarray) -> np.ndarray:
    """H x W uint8, 255 the subject, for an RGB uint8 picture."""
    sess = session(model)
    recipe = model.known.recipe
    try:
        feed = {sess.get_inputs()[0].name: model_input(rgb, recipe)}
        output = sess.run(None, feed)[0]
        return mask_from_output(output, recipe, rgb.shape[:2])
    except Exception as exc:  # a file with other inputs/outputs than rembg's models
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{model.path.name} does not run as {model.known.recipe.family} "
            f"({model.known.name}): {exc}",
        ) from exc


def mask_image(mask: np.ndarray) -> np.ndarray:
    """The wire's mask: H x W x 3 uint8."""
    return np.repeat(np.asarray(mask, np.uint8)[:, :, None], 3, axis=2)
