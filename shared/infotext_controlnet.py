"""The A1111 ControlNet extension's infotext entries: `ControlNet 0: "Module: ..., ..."`.

Mikubill/sd-webui-controlnet (v1.1.45x, internal_controlnet/args.py) writes one entry per
enabled unit into `p.extra_generation_params`, keyed "ControlNet <unit index>", whose value
is `ControlNetUnit.serialize()`: these fields, in this order, each as
`field_to_displaytext(name): serialize_value(value)` joined by ", "::

    module, model, weight, resize_mode, processor_res, threshold_a, threshold_b,
    guidance_start, guidance_end, pixel_perfect, control_mode

Values are `str()` of the pydantic unit's typed fields (floats keep their ".0": "1.0",
"100.0"; processor_res is an int; booleans are "True"/"False") and enums by their display
values ("Crop and Resize", "My prompt is more important"). The model is the extension's
dropdown name, "<file stem> [<A1111 legacy model hash>]" (global_state.get_all_models), or
"None". A value holding "," or ":" makes the extension log an error and write "" instead.
A1111's quote() then JSON-quotes the whole entry (it holds commas and colons).

Reading follows the extension's ControlNetUnit.parse (split on ",", then on ": ") but keeps
inner keys it does not know (older builds and Forge add "Low Vram", "Hr Option", ...) and
also reads the 2023 lower-case layout ("preprocessor: canny, model: ..., starting/ending:
(0, 1), ..., preprocessor params: (512, 100, 200)").

Stdlib only (the Blender and Krita plugins read infotext too); ControlUnit is imported only
when a unit is asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import control_names

if TYPE_CHECKING:
    from .job import ControlUnit

# ControlNetUnit.infotext_fields(), as written: (display key, attribute).
FIELDS = (
    ("Module", "module"),
    ("Model", "model"),
    ("Weight", "weight"),
    ("Resize Mode", "resize_mode"),
    ("Processor Res", "processor_res"),
    ("Threshold A", "threshold_a"),
    ("Threshold B", "threshold_b"),
    ("Guidance Start", "guidance_start"),
    ("Guidance End", "guidance_end"),
    ("Pixel Perfect", "pixel_perfect"),
    ("Control Mode", "control_mode"),
)

# scripts/enums.py ResizeMode and ControlMode values <-> Dreamwire's job values.
RESIZE_MODES = {
    "just_resize": "Just Resize",
    "crop_and_resize": "Crop and Resize",
    "resize_and_fill": "Resize and Fill",
}
# Older names the extension still accepts (ControlNetUnit.check_resize_mode).
_RESIZE_ALIASES = {
    "Inner Fit (Scale to Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill",
    "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Envelope (Outer Fit)": "Resize and Fill",
}
CONTROL_MODES = {
    "balanced": "Balanced",
    "prompt": "My prompt is more important",
    "controlnet": "ControlNet is more important",
}

# The extension's slider defaults for a preprocessor's thresholds (slider_1, slider_2), for
# the preprocessors Dreamwire runs with the same settings; a hidden slider is 0.5
# (supported_preprocessor.PreprocessorParameter). Processor Res defaults to 512.
DEFAULT_PROCESSOR_RES = 512
_THRESHOLDS = {
    "canny": (100.0, 200.0),
    "scribble": (32.0, 0.5),
    "scribble_xdog": (32.0, 0.5),
    "threshold": (127.0, 0.5),
    "binary": (0.0, 0.5),
    "tile_resample": (1.0, 0.5),
    "mlsd": (0.1, 0.1),
    "mediapipe_face": (1.0, 0.5),  # Max Faces, Min Face Confidence
}
_HIDDEN = 0.5

# The extension's UI labels (what its infotext usually holds) -> Dreamwire's preprocessors.
_MODULE_ALIASES = {
    "invert (from white bg & black line)": "invert",
    "lineart_standard (from white bg & black line)": "lineart_standard",
    "lineart_realistic": "lineart",
    "normal_bae": "normalbae",
    "seg_ofade20k": "seg",
    "hed": "softedge_hed",
    "pidinet": "softedge_pidinet",
}

_RE_KEY = re.compile(r"^Control[Nn]et (\d+)$")
_RE_MODEL = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]+)\]$")
# One inner "key: value"; a parenthesised value (the 2023 layout) may hold commas.
_RE_INNER = re.compile(r"\s*([^:,]+?):\s*(\([^)]*\)|[^,]*)(?:,|$)")


def unit_key(index: int) -> str:
    """Infotext.unit_prefix(): the key of unit `index`."""
    return f"ControlNet {index}"


def unit_index(key: str) -> int | None:
    """The unit index of a "ControlNet N" key (also the 2023 "Controlnet N"), else None."""
    m = _RE_KEY.match(key)
    return int(m.group(1)) if m else None


def model_title(name: str, digest: str | None) -> str:
    """The extension's model name: "<stem> [<hash>]", "None" when there is no model."""
    if not name:
        return "None"
    return f"{name} [{digest}]" if digest else name


def thresholds(module: str) -> tuple[float, float]:
    """Threshold A and B as the extension records them for a preprocessor at its defaults."""
    return _THRESHOLDS.get(module, (_HIDDEN, _HIDDEN))


def type_from_name(name: str) -> str | None:
    """A runnable control type from a model or preprocessor name (the T2I style model's
    "style" is not one)."""
    from .job import CONTROL_TYPES  # here, not at the top: job.py imports numpy

    kind = control_names.type_from_name(name)
    return kind if kind in CONTROL_TYPES else None


@dataclass
class ControlNetEntry:
    """One unit's settings as the extension writes them (no image). Fields not given in a
    text keep the extension's defaults; unknown inner keys stay in `extras`."""

    module: str = "none"
    model: str = "None"  # the extension's title, "<stem> [<hash8>]", or "None"
    weight: float = 1.0
    resize_mode: str = "Crop and Resize"
    processor_res: int = DEFAULT_PROCESSOR_RES
    threshold_a: float = _HIDDEN
    threshold_b: float = _HIDDEN
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: str = "Balanced"
    extras: dict[str, str] = field(default_factory=dict)
    # The text as read, so that an unchanged entry is written back byte for byte.
    raw: str | None = field(default=None, repr=False, compare=False)

    # -- names ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The model without its hash; "" for "None"."""
        if self.model in ("None", ""):
            return ""
        m = _RE_MODEL.match(self.model)
        return m.group(1) if m else self.model

    @property
    def model_hash(self) -> str | None:
        m = _RE_MODEL.match(self.model)
        return m.group(2) if m else None

    @property
    def preprocessor(self) -> str:
        """The module as a Dreamwire preprocessor name."""
        return _MODULE_ALIASES.get(self.module, self.module) or "none"

    @property
    def control_type(self) -> str | None:
        """The control type: from the model's name, else (Union models and units without a
        model) from the preprocessor's."""
        name = self.model_name
        kind = type_from_name(name) if name and "union" not in name.lower() else None
        return kind or type_from_name(self.preprocessor)

    # -- text ----------------------------------------------------------------------------
    def values(self) -> dict[str, str]:
        out = {key: _serialize(getattr(self, attr)) for key, attr in FIELDS}
        out.update(self.extras)
        return out

    def to_text(self) -> str:
        """ControlNetUnit.serialize(): "" when a value holds "," or ":", as the extension
        does (it cannot write such a value so that it reads back)."""
        if self.raw is not None and parse_entry(self.raw) == self:
            return self.raw
        values = self.values()
        if any("," in v or ":" in v for v in values.values()):
            return ""
        return ", ".join(f"{k}: {v}" for k, v in values.items())

    def control_unit(self) -> ControlUnit | None:
        """The job's ControlUnit for these settings (image None: the host supplies it), or
        None when no control type can be told from the model or the preprocessor."""
        from .job import ControlUnit

        kind = self.control_type
        if kind is None:
            return None
        resize = _RESIZE_ALIASES.get(self.resize_mode, self.resize_mode)
        return ControlUnit(
            type=kind,
            image=None,
            model=self.model_name,
            weight=float(self.weight),
            start=float(self.guidance_start),
            end=float(self.guidance_end),
            control_mode=_key_for(CONTROL_MODES, self.control_mode, "balanced"),
            preprocessor=self.preprocessor,
            resize_mode=_key_for(RESIZE_MODES, resize, "crop_and_resize"),
            processor_res=self._unit_processor_res(),
        )

    def _unit_processor_res(self) -> int:
        """The unit's processor_res: -1 (the default) for 512 and for what the extension
        would reset to its default (outside 64..2048)."""
        from .job import MAX_PROCESSOR_RES, MIN_PROCESSOR_RES

        res = self.processor_res
        if res == DEFAULT_PROCESSOR_RES or not MIN_PROCESSOR_RES <= res <= MAX_PROCESSOR_RES:
            return -1
        return int(res)


def _key_for(table: dict[str, str], display: str, default: str) -> str:
    for key, value in table.items():
        if value == display or key == display:
            return key
    return default


def _serialize(value) -> str:
    return str(value)  # serialize_value(): str() of the typed field, enums as their value


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        return kind(float(text))  # "512.0" for an int field


def parse_entry(text: str) -> ControlNetEntry:
    """Read one unit's value (unquoted). Never raises: values that cannot be typed are kept
    as text in `extras`."""
    entry = ControlNetEntry(raw=text)
    by_key = {key: attr for key, attr in FIELDS}
    for key, value in _RE_INNER.findall(text):
        key, value = key.strip(), value.strip()
        if key in _LEGACY and _read_legacy(entry, key, value):
            continue
        attr = by_key.get(key)
        if attr is None:
            entry.extras[key] = value
            continue
        default = getattr(ControlNetEntry, attr, None)
        try:
            if isinstance(default, bool):
                if value not in ("True", "False"):
                    raise ValueError(value)
                typed = value == "True"
            elif isinstance(default, int):
                typed = _number(value, int)
            elif isinstance(default, float):
                typed = _number(value, float)
            else:
                typed = value
        except ValueError:
            entry.extras[key] = value
            continue
        setattr(entry, attr, typed)
    return entry


# The 2023 layout (sd-webui-controlnet 1.1.2xx-1.1.41x): lower-case keys.
_LEGACY = (
    "preprocessor",
    "model",
    "weight",
    "starting/ending",
    "resize mode",
    "pixel perfect",
    "pixel_perfect",
    "control mode",
    "preprocessor params",
)


def _read_legacy(entry: ControlNetEntry, key: str, value: str) -> bool:
    try:
        if key == "preprocessor":
            entry.module = value
        elif key == "model":
            entry.model = value
        elif key == "weight":
            entry.weight = float(value)
        elif key == "starting/ending":
            start, end = (float(v) for v in value.strip("()").split(","))
            entry.guidance_start, entry.guidance_end = start, end
        elif key == "resize mode":
            entry.resize_mode = value
        elif key in ("pixel perfect", "pixel_perfect"):
            entry.pixel_perfect = value == "True"
        elif key == "control mode":
            entry.control_mode = value
        elif key == "preprocessor params":
            res, a, b = (v.strip() for v in value.strip("()").split(","))
            if res not in ("None", ""):
                entry.processor_res = _number(res, int)
            if a not in ("None", ""):
                entry.threshold_a = float(a)
            if b not in ("None", ""):
                entry.threshold_b = float(b)
        return True
    except ValueError:
        return False


__all__ = [
    "CONTROL_MODES",
    "ControlNetEntry",
    "FIELDS",
    "RESIZE_MODES",
    "model_title",
    "parse_entry",
    "thresholds",
    "type_from_name",
    "unit_index",
    "unit_key",
]
