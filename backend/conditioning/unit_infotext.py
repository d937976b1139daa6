"""The ControlNet extension's infotext entries for the units a job runs (each planned
unit's `infotext`, made when the job is planned).

One `ControlNet <i>` entry per unit (ControlNets, T2I-Adapters and Union models alike, as
the A1111 extension lists them all as ControlNet models), with the model actually used,
named as the extension's model dropdown names it: "<file stem> [<hash>]", the hash being
A1111's legacy model hash of the file (sd_models.model_hash: sha256 of the 64 KiB at
offset 1 MiB, 8 hex digits). The extension only lists files, so a diffusers folder is
written by its folder name with the hash of the weights file inside it.

The module is the preprocessor that ran: an openpose* unit that ran DWPose (its files in
the library's annotator folders) is recorded as the dw_* one (preprocess.ran_as), so the
text says which annotator made the map. Processor Res is the detect resolution the
preprocessor ran at, as the extension records it (detect_resolution.py: the unit's
processor_res, else 512). What Dreamwire does not have as a setting is written as the
extension would record it for the same behaviour: Pixel Perfect False; Threshold A/B the
values Dreamwire's preprocessor uses (its slider defaults, 0.5 for hidden sliders).
Formatting is shared/infotext_controlnet.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dreamwire.backend.library import hashing
from dreamwire.shared.infotext_controlnet import (
    CONTROL_MODES,
    RESIZE_MODES,
    ControlNetEntry,
    model_title,
    thresholds,
)
from dreamwire.shared.job import ControlUnit

from . import detect_resolution, preprocess
from .unit_file import UnitFile

# Weight files of a diffusers folder, in the order diffusers prefers them.
_FOLDER_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
)


def model_hash(path: Path) -> str | None:
    """The extension's model hash: A1111's legacy hash of the file (of a diffusers
    folder's weights file)."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in _FOLDER_WEIGHTS if (path / n).is_file()]
        found = found or sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if not found:
            return None
        path = found[0]
    try:
        return hashing.legacy_hash(path)
    except OSError:
        return None


def model_stem(path: Path) -> str:
    """os.path.splitext(os.path.basename(file))[0], the extension's name; a folder's name."""
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def entry(unit: ControlUnit, info: UnitFile, roots: Sequence[Path] = ()) -> ControlNetEntry:
    """The unit's entry; `roots`: the library's model roots, whose annotator folders decide
    whether an openpose* unit runs DWPose."""
    module = preprocess.ran_as(unit.preprocessor or "none", roots)
    a, b = thresholds(module)
    return ControlNetEntry(
        module=module,
        model=model_title(model_stem(info.path), model_hash(info.path)),
        weight=float(unit.weight),
        resize_mode=RESIZE_MODES.get(unit.resize_mode, unit.resize_mode),
        processor_res=detect_resolution.resolution(module, unit.processor_res),
        threshold_a=a,
        threshold_b=b,
        guidance_start=float(unit.start),
        guidance_end=float(unit.end),
        pixel_perfect=False,
        control_mode=CONTROL_MODES.get(unit.control_mode, unit.control_mode),
    )
