"""Control-image preprocessors (annotators) for images that come from a canvas.

Model-free ones are implemented here with OpenCV and numpy, following the algorithms of
controlnet-aux and the A1111 extension's annotators:
  canny         cv2.Canny(low=100, high=200) on the RGB image (controlnet-aux CannyDetector)
  shuffle       content shuffle: the image remapped through two smooth random flow fields
                (controlnet-aux ContentShuffleDetector, make_noise_disk with f=256); seeded
  scribble      scribble_xdog: difference of Gaussians (sigma 0.5 and 5), lines where
                2 * (255 - dog) > threshold (default 32), white on black
  invert        255 - image (A1111 "invert (from white bg & black line)")
  binary        grey < threshold -> white (A1111 "binary"; threshold 0 or 255 = Otsu)
  threshold     white where every channel is above the threshold (default 127), black
                elsewhere: the extension's `threshold`, not an inverted `binary`
  tile_resample the image shrunk by a factor (default 1: unchanged), A1111's tile preprocessor
  lineart_standard  A1111's model-free line art: how much darker each pixel is than its
                Gaussian (sigma 6) surround, normalised by the median of the clear lines
  t2ia_color_grid   the T2I-Adapter color model's input (A1111 annotator/color): the image
                with its shortest side resized to 512 (INTER_AREA), shrunk 64x (INTER_CUBIC)
                and blown back up (INTER_NEAREST) into a grid of flat colour cells
  t2ia_style_clipvision  refused: it makes CLIP-vision embeddings for the style adapter,
                which Dreamwire does not run
  depth / depth_anything_v2  Depth Anything v2 through transformers (depth_anything.py),
                weights from the A1111 / ComfyUI installs or Dreamwire's annotator folder
  depth_marigold / normal_marigold  Marigold depth / normals (diffusers) from a models/Marigold
                or annotator folder (marigold_annotators.py)
  dw_openpose_full / dw_openpose / dw_openpose_hand / dw_openpose_face  DWPose (body, hands,
                face) through onnxruntime from yolox_l.onnx + dw-ll_ucoco_384.onnx (dwpose.py);
                (and dw_openpose_faceonly); openpose, openpose_hand, openpose_face,
                openpose_faceonly and openpose_full run DWPose when those files are there (the
                infotext then names the dw_* one, ran_as) and the original OpenPose otherwise
  mediapipe_face  MediaPipe Face Mesh landmarks drawn as ControlNetMediaPipeFace's annotator
                draws them (mediapipe_face.py; needs the mediapipe package)
Each runs at the unit's detect resolution ("Preprocessor resolution", default 512) as the
A1111 extension runs it (detect_resolution.py); the map comes back at that size.
Those that need annotator network weights (softedge/HED, lineart, lineart_anime, MiDaS
depth (depth_midas), OpenPose, NormalBAE, segmentation) load them, per model root, from the
A1111 ControlNet extension's annotator/downloads/<annotator> or ComfyUI's
comfyui_controlnet_aux/ckpts/lllyasviel/Annotators, else from the annotator folder
($DREAMWIRE_ANNOTATORS, else <cache>/dreamwire/annotators) through controlnet-aux, imported
only when one of them is asked for; a missing file or package is PREPROCESSOR_UNAVAILABLE
naming the file and where to put it. controlnet-aux itself imports torchvision, so on
machines without a matching torchvision these preprocessors report that clearly too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dreamwire.backend.conditioning import detect_resolution, dwpose
from dreamwire.backend.library import annotator_files
from dreamwire.backend.library.annotator_files import annotator_dir
from dreamwire.shared.errors import DreamwireError, ErrorCode

ANNOTATORS_URL = "https://huggingface.co/lllyasviel/Annotators"


def depth_anything_v2(image: np.ndarray, roots=(), **_) -> np.ndarray:
    from dreamwire.backend.conditioning import depth_anything

    return depth_anything.depth_map(_rgb(image), roots)


def depth_marigold(image: np.ndarray, roots=(), seed: int = 0, **_) -> np.ndarray:
    from dreamwire.backend.conditioning import marigold_annotators

    return marigold_annotators.depth_marigold(_rgb(image), roots, seed)


def normal_marigold(image: np.ndarray, roots=(), seed: int = 0, **_) -> np.ndarray:
    from dreamwire.backend.conditioning import marigold_annotators

    return marigold_annotators.normal_marigold(_rgb(image), roots, seed)


def mediapipe_face(image: np.ndarray, roots=(), **params) -> np.ndarray:
    from dreamwire.backend.conditioning import mediapipe_face as face

    return face.mediapipe_face(_rgb(image), roots, **params)


def _rgb(image: np.ndarray) -> np.ndarray:
    """HWC3, as the annotators do: any 1/3/4-channel uint8 image to RGB (alpha over white)."""
    if image.dtype != np.uint8:
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE, f"preprocessors take uint8 images, not {image.dtype}"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE, f"cannot preprocess an image of shape {image.shape}"
        )
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        colour = image[:, :, :3].astype(np.float32)
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (colour * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    return image


def canny(image: np.ndarray, low: int = 100, high: int = 200, **_) -> np.ndarray:
    edges = cv2.Canny(_rgb(image), int(low), int(high))
    return np.repeat(edges[:, :, None], 3, axis=2)


def _noise_disk(h: int, w: int, f: int, rng: np.random.RandomState) -> np.ndarray:
    noise = rng.uniform(low=0, high=1, size=((h // f) + 2, (w // f) + 2))
    noise = cv2.resize(noise, (w + 2 * f, h + 2 * f), interpolation=cv2.INTER_CUBIC)
    noise = noise[f : f + h, f : f + w]
    noise -= np.min(noise)
    noise /= max(float(np.max(noise)), 1e-12)
    return noise[:, :, None]


def shuffle(image: np.ndarray, seed: int = 0, f: int = 256, **_) -> np.ndarray:
    img = _rgb(image)
    h, w = img.shape[:2]
    rng = np.random.RandomState(seed % 2**32)
    x = _noise_disk(h, w, f, rng) * float(w - 1)
    y = _noise_disk(h, w, f, rng) * float(h - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return cv2.remap(img, flow, None, cv2.INTER_LINEAR)


def scribble(image: np.ndarray, threshold: int = 32, **_) -> np.ndarray:
    img = _rgb(image).astype(np.float32)
    g1 = cv2.GaussianBlur(img, (0, 0), 0.5)
    g2 = cv2.GaussianBlur(img, (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    out = np.zeros(img.shape, np.uint8)
    out[2 * (255 - dog.astype(np.int32)) > threshold] = 255
    return out


def invert(image: np.ndarray, **_) -> np.ndarray:
    return 255 - _rgb(image)


def binary(image: np.ndarray, threshold: int = 0, **_) -> np.ndarray:
    grey = cv2.cvtColor(_rgb(image), cv2.COLOR_RGB2GRAY)
    if threshold in (0, 255):
        _, out = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        _, out = cv2.threshold(grey, int(threshold), 255, cv2.THRESH_BINARY_INV)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def threshold(image: np.ndarray, threshold: int = 127, **_) -> np.ndarray:
    # The extension tests the darkest channel, so a saturated colour stays black.
    rgb = _rgb(image)
    out = np.zeros_like(rgb)
    out[rgb.min(axis=2) > int(threshold)] = 255
    return out


def tile_resample(image: np.ndarray, factor: float = 1.0, **_) -> np.ndarray:
    img = _rgb(image)
    if factor <= 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(
        img, (max(1, int(w / factor)), max(1, int(h / factor))), interpolation=cv2.INTER_AREA
    )


def lineart_standard(image: np.ndarray, **_) -> np.ndarray:
    x = _rgb(image).astype(np.float32)
    g = cv2.GaussianBlur(x, (0, 0), 6.0)
    intensity = np.min(g - x, axis=2).clip(0, 255)
    lines = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(lines)) if lines.size else 0.0)
    intensity *= 127
    out = intensity.clip(0, 255).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def color_grid(image: np.ndarray, res: int = 512, **_) -> np.ndarray:
    img = _rgb(image)
    h, w = img.shape[:2]
    # Shortest side to `res` (annotator/color's cv2_resize_shortest_edge).
    short = h if h < w else w
    size = (int(round(w / short * res)), int(round(h / short * res)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    cells = cv2.resize(img, (max(1, w // 64), max(1, h // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST)


def style_clipvision(image: np.ndarray, **_) -> np.ndarray:
    raise DreamwireError(
        ErrorCode.PREPROCESSOR_UNAVAILABLE,
        "t2ia_style_clipvision makes CLIP-vision image embeddings for the T2I-Adapter style "
        "model, which Dreamwire does not run (it takes control images only)",
    )


@dataclass(frozen=True)
class Annotator:
    """A preprocessor backed by controlnet-aux and annotator weights."""

    cls: str  # controlnet_aux class name
    files: tuple[str, ...]  # files from lllyasviel/Annotators it needs
    a1111: str  # the A1111 ControlNet extension's subfolder of annotator/downloads for them
    call: dict = None  # extra keyword arguments for the detector call

    def folders(self, roots=()) -> list[Path]:
        """Where the files may be, in order: per model root A1111's subfolder and ComfyUI's
        copy of lllyasviel/Annotators, then Dreamwire's annotator folder."""
        out = []
        for root in roots:
            root = Path(root)
            out += [
                root / annotator_files.A1111_DOWNLOADS / self.a1111,
                root / annotator_files.COMFY_CKPTS / "lllyasviel" / "Annotators",
            ]
        return [*out, annotator_dir()]

    def weights_folder(self, roots=()) -> Path | None:
        """The first of `folders` that holds all the files."""
        return next(
            (f for f in self.folders(roots) if all((f / n).is_file() for n in self.files)), None
        )

    def __call__(self, image: np.ndarray, roots=(), **_) -> np.ndarray:
        folders = self.folders(roots)
        folder = self.weights_folder(roots)
        if folder is None:
            raise DreamwireError(
                ErrorCode.PREPROCESSOR_UNAVAILABLE,
                f"this preprocessor needs the annotator weights {', '.join(self.files)} (from "
                f"{ANNOTATORS_URL}) together in one of: {'; '.join(str(f) for f in folders)} "
                "(or set DREAMWIRE_ANNOTATORS to the folder that holds them). Or send a "
                "ready-made control image with preprocessor 'none'",
            )
        try:
            import controlnet_aux
        except Exception as exc:  # ImportError, or torchvision failing inside it
            raise DreamwireError(
                ErrorCode.PREPROCESSOR_UNAVAILABLE,
                f"this preprocessor runs through the controlnet-aux package, which could not be "
                f"imported here ({type(exc).__name__}: {exc}); install controlnet-aux with a "
                "torchvision that matches this torch, or send a ready-made control image",
            ) from None
        detector_cls = getattr(controlnet_aux, self.cls, None)
        if detector_cls is None:
            raise DreamwireError(
                ErrorCode.PREPROCESSOR_UNAVAILABLE,
                f"the installed controlnet-aux has no {self.cls}",
            )
        detector = detector_cls.from_pretrained(str(folder))
        h, w = image.shape[:2]
        # The picture comes resized and padded (detect_resolution.py); at its shorter side,
        # a multiple of 64, controlnet-aux's own resizes leave it as it is.
        side = min(h, w)
        out = detector(
            _rgb(image),
            output_type="np",
            detect_resolution=side,
            image_resolution=side,
            **(self.call or {}),
        )
        out = np.asarray(out)
        if out.ndim == 2:
            out = np.repeat(out[:, :, None], 3, axis=2)
        if out.shape[:2] != (h, w):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        return out.astype(np.uint8)


def pose(fallback: Annotator | None = None, **parts: bool) -> Callable[..., np.ndarray]:
    """A DWPose preprocessor drawing `parts` (body, hands, face), falling back to the
    original OpenPose `fallback` without DWPose's files (dwpose.py)."""
    detector = dwpose.DWPose(fallback=fallback, **parts)

    def run(image: np.ndarray, roots=(), **params) -> np.ndarray:
        return detector(_rgb(image), roots=roots, **params)

    return run


def openpose(**include: bool) -> Annotator:
    """controlnet-aux's OpenposeDetector drawing the parts `include` names."""
    return Annotator(
        "OpenposeDetector",
        ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
        "openpose",
        call=include,
    )


# A1111's openpose* -> the DWPose preprocessor that runs in its place when DWPose's files
# are there (and that the infotext then names): dw_openpose_full is the extension's own
# name; it has no DWPose module for the other part sets, so those are Dreamwire's dw_* names.
DW_FOR_OPENPOSE = {
    "openpose": "dw_openpose",
    "openpose_hand": "dw_openpose_hand",
    "openpose_face": "dw_openpose_face",
    "openpose_faceonly": "dw_openpose_faceonly",
    "openpose_full": "dw_openpose_full",
}


def openpose_or_dw(body: bool, hands: bool, face: bool) -> Callable[..., np.ndarray]:
    """A1111's openpose* preprocessor: DWPose when its files are there, else OpenPose."""
    include = {"include_body": body, "include_hand": hands, "include_face": face}
    return pose(openpose(**include), body=body, hands=hands, face=face)


PREPROCESSORS: dict[str, Callable[..., np.ndarray]] = {
    "canny": canny,
    "shuffle": shuffle,
    "scribble": scribble,
    "scribble_xdog": scribble,
    "invert": invert,
    "binary": binary,
    "threshold": threshold,
    "tile_resample": tile_resample,
    "lineart_standard": lineart_standard,
    "t2ia_color_grid": color_grid,
    "t2ia_style_clipvision": style_clipvision,
    # PiDiNet with its thin-line filter, as A1111's t2ia_sketch_pidi (pidinet_ts) runs it.
    "t2ia_sketch_pidi": Annotator(
        "PidiNetDetector", ("table5_pidinet.pth",), "pidinet", call={"apply_filter": True}
    ),
    "softedge": Annotator("HEDdetector", ("ControlNetHED.pth",), "hed"),
    "softedge_hed": Annotator("HEDdetector", ("ControlNetHED.pth",), "hed"),
    "softedge_pidinet": Annotator("PidiNetDetector", ("table5_pidinet.pth",), "pidinet"),
    "lineart": Annotator("LineartDetector", ("sk_model.pth", "sk_model2.pth"), "lineart"),
    "lineart_anime": Annotator("LineartAnimeDetector", ("netG.pth",), "lineart_anime"),
    "depth": depth_anything_v2,
    "depth_anything_v2": depth_anything_v2,
    "depth_marigold": depth_marigold,
    "normal_marigold": normal_marigold,
    "depth_midas": Annotator("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",), "midas"),
    # A1111's names; dw_* need DWPose, openpose* run it when it is there (dwpose.py).
    "openpose": openpose_or_dw(body=True, hands=False, face=False),
    "openpose_hand": openpose_or_dw(body=True, hands=True, face=False),
    "openpose_face": openpose_or_dw(body=True, hands=False, face=True),
    "openpose_faceonly": openpose_or_dw(body=False, hands=False, face=True),
    "openpose_full": openpose_or_dw(body=True, hands=True, face=True),
    "dw_openpose_full": pose(body=True, hands=True, face=True),
    "dw_openpose": pose(body=True, hands=False, face=False),
    "dw_openpose_hand": pose(body=True, hands=True, face=False),
    "dw_openpose_face": pose(body=True, hands=False, face=True),
    "dw_openpose_faceonly": pose(body=False, hands=False, face=True),
    "normalbae": Annotator("NormalBaeDetector", ("scannet.pt",), "normal_bae"),
    "seg": Annotator(
        "OneformerSegmentor", ("250_16_swin_l_oneformer_ade20k_160k.pth",), "oneformer"
    ),
    "mlsd": Annotator("MLSDdetector", ("mlsd_large_512_fp32.pth",), "mlsd"),
    "mediapipe_face": mediapipe_face,
}


def names() -> list[str]:
    return sorted(PREPROCESSORS)


def ran_as(name: str, roots=()) -> str:
    """The preprocessor that runs for `name`: an openpose* one runs DWPose when its files
    are in `roots`' annotator folders, and is then recorded as that DWPose preprocessor."""
    dw = DW_FOR_OPENPOSE.get(name)
    return dw if dw is not None and dwpose.find_files(roots) is not None else name


def run(name: str, image: np.ndarray, roots=(), processor_res: int = -1, **params) -> np.ndarray:
    """Run preprocessor `name` on an RGB(A) uint8 image at the unit's `processor_res` as
    the A1111 extension does (detect_resolution.py): the map comes back at the detect size
    (H x W x 3 uint8, the image's aspect), or the image's own size for preprocessors that
    take no resolution. `roots`: the library's model roots, whose A1111 / ComfyUI annotator
    folders are searched."""
    fn = PREPROCESSORS.get(name)
    if fn is None:
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE,
            f"unknown preprocessor {name!r}; known: {', '.join(names())}",
        )
    return detect_resolution.run_at(name, fn, _rgb(image), processor_res, roots=roots, **params)
