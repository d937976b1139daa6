"""`dreamwire generate --control ...` and `--region ...`: command-line words to the job's
ControlUnit and Region, with the A1111 ControlNet extension's names accepted for modes.

A control unit is one flag with space-separated words, as an A1111 API script lists a unit's
fields::

    --control TYPE[:MODEL] [IMAGE] [weight=W] [start=S] [end=E] [mode=M] [resize=R] [pre=P] [res=N]

A word with "=" whose key is one of KEYS is a setting; the one other word is the image (no
image: the unit takes the init image, as A1111 does in img2img). A region is
``--region PROMPT MASK [WEIGHT]``.

Everything wrong here is a DreamwireError (INVALID_JOB, INVALID_IMAGE, INVALID_REGION), so
the CLI reports it with its stable code and exit status 2, like any other bad job.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from dreamwire.backend.cli.image_files import open_image
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext_controlnet import ControlNetEntry
from dreamwire.shared.job import CONTROL_TYPES, RESIZE_MODES, ControlUnit, Region

# Key words of a --control flag (and their longer spellings) -> ControlUnit fields.
KEYS = {
    "model": "model",
    "image": "image",
    "weight": "weight",
    "start": "start",
    "guidance_start": "start",
    "end": "end",
    "guidance_end": "end",
    "mode": "control_mode",
    "control_mode": "control_mode",
    "resize": "resize_mode",
    "resize_mode": "resize_mode",
    "pre": "preprocessor",
    "preprocessor": "preprocessor",
    "module": "preprocessor",
    "res": "processor_res",
    "processor_res": "processor_res",
}

# Control modes: Dreamwire's names, the A1111 ControlNet extension's display names and its
# API's integers (ControlMode 0, 1, 2), all lower-cased.
CONTROL_MODE_NAMES = {
    "balanced": "balanced",
    "0": "balanced",
    "prompt": "prompt",
    "my prompt is more important": "prompt",
    "1": "prompt",
    "control": "controlnet",
    "controlnet": "controlnet",
    "controlnet is more important": "controlnet",
    "2": "controlnet",
}
# Resize modes, with "_"/"-" read as spaces: the extension's names, its older aliases
# (ControlNetUnit.check_resize_mode) and its API's integers (ResizeMode 0, 1, 2).
RESIZE_MODE_NAMES = {
    "just resize": "just_resize",
    "0": "just_resize",
    "crop and resize": "crop_and_resize",
    "inner fit (scale to fit)": "crop_and_resize",
    "scale to fit (inner fit)": "crop_and_resize",
    "1": "crop_and_resize",
    "resize and fill": "resize_and_fill",
    "outer fit (shrink to fit)": "resize_and_fill",
    "envelope (outer fit)": "resize_and_fill",
    "2": "resize_and_fill",
}

CONTROL_HELP = (
    "a ControlNet unit (repeatable): TYPE[:MODEL] [IMAGE] [weight=1] [start=0] [end=1] "
    "[mode=balanced|prompt|control] [resize=just_resize|crop_and_resize|resize_and_fill] "
    "[pre=PREPROCESSOR] [res=512 (the preprocessor's detect resolution, 64..2048)]. TYPE: "
    + ", ".join(CONTROL_TYPES)
    + ". MODEL: a file in "
    "models/ControlNet (default: picked by type and base model). No IMAGE: the unit takes "
    "--init-image. A1111's mode names work too ('My prompt is more important', "
    "'ControlNet is more important', 0/1/2). A 16-bit greyscale PNG is read at full depth."
)
REGION_HELP = (
    "a regional prompt (repeatable): PROMPT MASK [WEIGHT]. MASK: an image of the result's "
    "shape read as greyscale, white = the region (grey = partly, transparent = outside); "
    "WEIGHT 0..1 (default 1; Latent Couple's defaults are 0.8). --prompt is the background."
)


def _bad(message: str, code: ErrorCode = ErrorCode.INVALID_JOB) -> DreamwireError:
    return DreamwireError(code, message)


def _mode(text: str, table: dict[str, str], what: str, where: str, known: str) -> str:
    key = text.strip().lower().replace("_", " ").replace("-", " ")
    for name in (key, key.replace(" ", "")):
        if name in table:
            return table[name]
    raise _bad(f"{where}: unknown {what} {text!r}; known: {known} (or A1111's names)")


def control_type(text: str, where: str) -> str:
    name = text.strip().lower()
    for candidate in (name, name.replace("_", "-"), name.replace("-", "_")):
        if candidate in CONTROL_TYPES:
            return candidate
    close = difflib.get_close_matches(name, CONTROL_TYPES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise _bad(f"{where}: unknown control type {text!r}{hint}; known: {', '.join(CONTROL_TYPES)}")


def _number(text: str, what: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad(f"{where}: {what} must be a number, got {text!r}") from None


def parse_control(words: list[str], index: int) -> ControlUnit:
    """One --control flag's words -> a ControlUnit (its image read from the file)."""
    head, *rest = words
    kind, _, model = head.partition(":")
    where = f"--control {index} ({head})"
    unit = ControlUnit(type=control_type(kind, where), image=None, model=model.strip())
    image: Path | None = None
    for word in rest:
        key, eq, value = word.partition("=")
        field = KEYS.get(key.strip().lower()) if eq else None
        if field is None:
            if image is not None:
                raise _bad(
                    f"{where}: {word!r} is a second image; settings are written "
                    "weight=, start=, end=, mode=, resize=, pre=, res= or model="
                )
            image = Path(word)
            continue
        if field == "image":
            image = Path(value)
        elif field in ("weight", "start", "end"):
            setattr(unit, field, _number(value, field, where))
        elif field == "control_mode":
            unit.control_mode = _mode(
                value, CONTROL_MODE_NAMES, "control mode", where, "balanced, prompt, control"
            )
        elif field == "resize_mode":
            unit.resize_mode = _mode(
                value, RESIZE_MODE_NAMES, "resize mode", where, ", ".join(RESIZE_MODES)
            )
        elif field == "processor_res":
            try:
                unit.processor_res = int(value)
            except ValueError:
                raise _bad(f"{where}: res must be a whole number, got {value!r}") from None
        elif field == "preprocessor":
            # The extension's UI labels ("normal_bae", "seg_ofade20k", ...) name ours too.
            unit.preprocessor = ControlNetEntry(module=value.strip() or "none").preprocessor
        else:
            unit.model = value.strip()
    if image is not None:
        unit.image = read_control_image(image, f"{where} image")
    return unit


def parse_region(words: list[str], index: int) -> Region:
    """One --region flag's words (PROMPT MASK [WEIGHT]) -> a Region."""
    where = f"--region {index}"
    if len(words) not in (2, 3):
        raise _bad(
            f"{where}: expected PROMPT MASK [WEIGHT], got {len(words)} word(s): {words!r}",
            ErrorCode.INVALID_REGION,
        )
    weight = 1.0
    if len(words) == 3:
        try:
            weight = float(words[2])
        except ValueError:
            raise _bad(
                f"{where}: weight must be a number, got {words[2]!r}", ErrorCode.INVALID_REGION
            ) from None
    return Region(
        prompt=words[0], mask=read_region_mask(Path(words[1]), f"{where} mask"), weight=weight
    )


# -- images --------------------------------------------------------------------------------
def _sixteen_bit(img) -> bool:
    return img.mode.startswith("I;16") or img.mode == "I"


def _has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def read_control_image(path: Path, what: str) -> np.ndarray:
    """H x W x 3 uint8, H x W x 4 when the file has alpha (the inpaint unit's mask), or for
    a 16-bit greyscale file (depth maps) H x W float32 0..1, the job's depth form."""
    with open_image(path, what) as img:
        if _sixteen_bit(img):
            return (np.asarray(img, dtype=np.float32) / np.float32(65535.0)).clip(0.0, 1.0)
        mode = "RGBA" if _has_alpha(img) else "RGB"
        return np.ascontiguousarray(np.asarray(img.convert(mode)))


def read_region_mask(path: Path, what: str) -> np.ndarray:
    """H x W uint8, 255 = inside (Region.mask): the file's grey, times its alpha where it has
    one, so a region painted on a transparent layer is the painted part."""
    with open_image(path, what) as img:
        if _sixteen_bit(img):
            grey = np.asarray(img, dtype=np.float32) / np.float32(257.0)
            return np.round(grey.clip(0.0, 255.0)).astype(np.uint8)
        if not _has_alpha(img):
            return np.asarray(img.convert("L")).copy()
        la = np.asarray(img.convert("LA"), dtype=np.uint16)
        return ((la[:, :, 0] * la[:, :, 1] + 127) // 255).astype(np.uint8)


def resolved_units(infotext: str) -> list[dict]:
    """The ControlNet units an image was made with, as its infotext records them (the model
    the backend picked, with its hash), in the flags' own names, for `--json`."""
    from dreamwire.shared.infotext import parse_infotext
    from dreamwire.shared.infotext_controlnet import CONTROL_MODES, RESIZE_MODES

    def key(table: dict[str, str], display: str) -> str:
        return next((k for k, v in table.items() if v == display), display)

    return [
        {
            "unit": i,
            "type": e.control_type,
            "model": e.model_name,
            "model_hash": e.model_hash,
            "preprocessor": e.preprocessor,
            "weight": e.weight,
            "start": e.guidance_start,
            "end": e.guidance_end,
            "mode": key(CONTROL_MODES, e.control_mode),
            "resize": key(RESIZE_MODES, e.resize_mode),
        }
        for i, e in sorted(parse_infotext(infotext).controlnets.items())
    ]
