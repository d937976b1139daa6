"""SAM 2 (Ravi et al. 2024) click-to-mask, run with transformers' Sam2Model.

Weights are transformers folders (config.json with model_type "sam2" + model.safetensors,
as `facebook/sam2.1-hiera-{tiny,small,base-plus,large}` is published), looked for, per
model root, in:
  <root>/models/sam2/                                        ComfyUI
  <root>/extensions/sd-webui-segment-anything/models/sam/     A1111's segment-anything
  <root>/annotators/, then Dreamwire's annotator folder       (annotator_files.py)
or Meta's original checkpoints (sam2_hiera_*.pt / sam2.1_hiera_*.pt, or the same keys as
.safetensors) in those folders, converted to Sam2Model on load (sam2_original.py); a
transformers folder in any of the folders is preferred to an original file.

The run is SAM 2's image predictor as transformers' Sam2Processor and Sam2Model do it:
the picture resized to the model's square input (bilinear, antialiased, on uint8 as
torchvision does), scaled to 0..1 and ImageNet-normalised; clicks and box scaled by the
same factors per axis (Sam2Processor._normalize_coordinates); the low-resolution mask
logits resized bilinearly to the picture and thresholded at 0
(Sam2ImageProcessor.post_process_masks). Sam2ImageProcessor itself is not called: it
needs torchvision, which has no build for the CPU torch Dreamwire installs.
One click and no box asks SAM 2 for its three candidate masks and keeps the one with the
best predicted IoU (the SAM 2 predictor's advice for an ambiguous prompt); more clicks or a
box ask for a single mask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.segment import Segment

COMFY_SAM2 = Path("models/sam2")
A1111_SAM = Path("extensions/sd-webui-segment-anything/models/sam")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What the refusal tells the artist to add (the smallest released model).
WANTED = (
    "sam2.1-hiera-tiny (the transformers folder of facebook/sam2.1-hiera-tiny) or Meta's "
    "sam2.1_hiera_tiny.pt"
)


def search_folders(roots: Iterable[Path | str] = ()) -> list[Path]:
    folders = []
    for root in roots:
        root = Path(root)
        folders += [root / COMFY_SAM2, root / A1111_SAM, root / "annotators"]
    return [*folders, annotator_files.annotator_dir()]


def _is_sam2_folder(path: Path) -> bool:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "sam2"


def _originals(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.glob("sam2*hiera*") if p.suffix.lower() in (".pt", ".safetensors")
    )


def _named(path: Path, name: str) -> bool:
    """Whether a job's model name means `path`: its file or folder name, or (for an
    original file) its stem with "-" for "_" (sam2.1-hiera-large for sam2.1_hiera_large.pt)."""
    return not name or name in (path.name, path.stem, path.stem.replace("_", "-"))


def find(roots: Iterable[Path | str] = (), name: str = "") -> Path:
    """The first SAM 2 model (named `name`, if given) in the search folders: a transformers
    folder, else an original checkpoint; DreamwireError `model_not_found` naming what to
    add and where when there is none."""
    folders = search_folders(roots)
    originals: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if _named(sub, name) and _is_sam2_folder(sub):
                return sub
        originals += [p for p in _originals(folder) if _named(p, name)]
    if originals:
        return originals[0]
    what = f"a SAM 2 model named {name!r}" if name else WANTED
    raise DreamwireError(
        ErrorCode.MODEL_NOT_FOUND,
        f"click-to-mask needs SAM 2's weights: {what} in one of: "
        + "; ".join(str(f) for f in folders),
    )


def load_model(path: Path):
    """Sam2Model from a transformers folder or an original checkpoint file."""
    if path.is_file():
        from dreamwire.backend.segmentation import sam2_original

        return sam2_original.load(path)
    from transformers import Sam2Model

    try:
        return Sam2Model.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{path.name}: not a loadable SAM 2 model: {exc}"
        ) from exc


def input_side(model) -> int:
    size = model.config.vision_config.backbone_config.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def pixel_values(rgb: np.ndarray, side: int):
    """1 x 3 x side x side float32, as Sam2ImageProcessor makes it from an RGB uint8 image."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def prompts(seg: Segment, size: tuple[int, int], side: int) -> dict:
    """Sam2Model's input_points / input_labels / input_boxes for one image and one object,
    in the model's input pixels (`size` the picture's H x W)."""
    import torch

    h, w = size
    sx, sy = side / w, side / h
    out = {}
    if seg.clicks:
        points = [[c.x * sx, c.y * sy] for c in seg.clicks]
        out["input_points"] = torch.tensor([[points]], dtype=torch.float32)
        out["input_labels"] = torch.tensor([[[int(c.positive) for c in seg.clicks]]])
    if seg.box is not None:
        x0, y0, x1, y1 = seg.box
        out["input_boxes"] = torch.tensor([[[x0 * sx, y0 * sy, x1 * sx, y1 * sy]]])
    return out


def multimask(seg: Segment) -> bool:
    return len(seg.clicks) == 1 and seg.box is None


def predict(model, rgb: np.ndarray, seg: Segment) -> np.ndarray:
    """H x W bool: the object `seg` points at in the RGB uint8 picture."""
    import torch
    import torch.nn.functional as F

    param = next(model.parameters())
    side = input_side(model)
    inputs = {k: v.to(param.device) for k, v in prompts(seg, rgb.shape[:2], side).items()}
    pixels = pixel_values(rgb, side).to(param.device, param.dtype)
    with torch.inference_mode():
        out = model(pixel_values=pixels, multimask_output=multimask(seg), **inputs)
    logits = out.pred_masks[0].float()  # objects x masks x h x w
    best = int(out.iou_scores[0, 0].argmax())
    full = F.interpolate(logits, rgb.shape[:2], mode="bilinear", align_corners=False)
    return (full[0, best] > 0).cpu().numpy()


def mask_image(mask: np.ndarray) -> np.ndarray:
    """The wire's mask: H x W x 3 uint8, 255 inside."""
    return np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
