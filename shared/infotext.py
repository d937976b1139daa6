"""A1111's generation-parameters text ("infotext"), the PNG `parameters` chunk.

The layout, as A1111's processing.create_infotext writes it and
infotext_utils.parse_generation_parameters reads it back::

    a prompt, which may span
    several lines
    Negative prompt: a negative prompt, also possibly multi-line
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, ...

The last line is a comma-separated list of `Key: value` pairs. A value containing a comma,
a colon or a newline is written as a JSON string (`Lora hashes: "a: 123, b: 456"`). The
last line only counts as parameters when at least three pairs can be read from it;
otherwise it is part of the prompt. Lines of the prompt are stripped, as A1111 does.

The ControlNet extension's units ("ControlNet 0: \"Module: canny, Model: ...\"") are typed
by infotext_controlnet.py and kept in `Infotext.controlnets`.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .infotext_controlnet import ControlNetEntry, parse_entry, unit_index, unit_key

# A1111's own patterns (infotext_utils.re_param_code and re_imagesize).
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"

# Keys in the order A1111 writes them: its fixed generation_params first, then the
# extra_generation_params that txt2img/img2img and the built-in extensions add, then
# Version/User last. Keys not listed here keep the order they were given in.
_FIXED_ORDER = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "NGMS",
    "Tiling",
)
# The ControlNet extension writes its units ("ControlNet 0", ...) from its process() hook:
# after img2img's Mask blur, before what p.init() adds (Inpaint area, Hires ...) and the
# networks' hashes.
_CONTROLNET = "ControlNet N"
_EXTRA_ORDER = (
    "Mask blur",
    _CONTROLNET,
    "Inpaint area",
    "Masked area padding",
    "Masked content",
    "Hires prompt",
    "Hires negative prompt",
    "Hires upscale",
    "Hires resize",
    "Hires steps",
    "Hires upscaler",
    "Lora hashes",
    "TI hashes",
)
_LAST_ORDER = ("Version", "User")


def quote(value: Any) -> str:
    """A1111's quote(): JSON-quote a value only when it holds a comma, colon or newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    """A1111's unquote(): undo quote(); text that is not valid JSON is kept as it is."""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        out = json.loads(text)
    except ValueError:
        return text
    return out if isinstance(out, str) else text


def format_number(value: float | int) -> str:
    """Whole floats without a trailing '.0' (A1111's UI sends 7, not 7.0, for CFG 7)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_hashes(text: str) -> dict[str, str]:
    """'name: hash, other: hash' (Lora hashes, TI hashes) -> {'name': 'hash', ...}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if ":" not in part:
            continue
        name, _, digest = part.rpartition(":")
        if name.strip():
            out[name.strip()] = digest.strip()
    return out


def format_hashes(hashes: dict[str, str]) -> str:
    # A1111 strips ':' and ',' from names when it writes these lists, so the list parses back.
    return ", ".join(
        f"{name.replace(':', '').replace(',', '')}: {digest}" for name, digest in hashes.items()
    )


@dataclass
class Infotext:
    """The parameters of one generated image, typed; anything else stays in `extras`.

    `None` means "not written". A missing Clip skip means 1 and a missing Schedule type
    means "Automatic", as in A1111.
    """

    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    sampler: str | None = None
    schedule_type: str | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    model_hash: str | None = None
    model: str | None = None
    vae_hash: str | None = None
    vae: str | None = None
    variation_seed: int | None = None
    variation_seed_strength: float | None = None
    denoising_strength: float | None = None
    clip_skip: int | None = None
    tiling: bool | None = None
    mask_blur: int | None = None
    hires_upscale: float | None = None
    # A1111's "Hires resize: WxH" (hr_resize_x, hr_resize_y; 0 = follows the aspect ratio),
    # written instead of "Hires upscale" when the second pass resizes to a size.
    hires_resize: tuple[int, int] | None = None
    hires_steps: int | None = None
    hires_upscaler: str | None = None
    lora_hashes: dict[str, str] = field(default_factory=dict)
    ti_hashes: dict[str, str] = field(default_factory=dict)
    # The ControlNet extension's units by unit index ("ControlNet 0", ...), images aside
    # (infotext_controlnet.py).
    controlnets: dict[int, ControlNetEntry] = field(default_factory=dict)
    version: str | None = None
    # Every other key, value unquoted, in the order read or given.
    extras: dict[str, str] = field(default_factory=dict)
    # The key order and raw values as read, so that parse -> format gives the same text.
    order: list[str] = field(default_factory=list, repr=False, compare=False)
    raw: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def effective_clip_skip(self) -> int:
        return self.clip_skip if self.clip_skip is not None else 1

    @property
    def effective_schedule_type(self) -> str:
        return self.schedule_type or "Automatic"

    def to_text(self) -> str:
        return format_infotext(self)

    def control_units(self) -> list:
        """The ControlNet units as the job's ControlUnits (image None), in unit order; an
        entry whose control type cannot be told (no model, no preprocessor) is left out."""
        units = (self.controlnets[i].control_unit() for i in sorted(self.controlnets))
        return [u for u in units if u is not None]

    def params(self) -> dict[str, str]:
        """The parameter line as an ordered {key: unquoted value} dict (what gets written)."""
        return _params(self)


def _parse_size(text: str) -> tuple[int, int]:
    # A1111 reads any "WxH" value into "<key>-1" and "<key>-2" (re_imagesize).
    m = _RE_SIZE.match(text)
    if m is None:
        raise ValueError(f"not a WxH size: {text!r}")
    return int(m.group(1)), int(m.group(2))


def _format_size(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


# Typed attribute <-> infotext key, value converters (text -> value, value -> text).
_TYPED: dict[str, tuple[str, Any, Any]] = {
    "Steps": ("steps", int, str),
    "Sampler": ("sampler", str, str),
    "Schedule type": ("schedule_type", str, str),
    "CFG scale": ("cfg_scale", float, format_number),
    "Seed": ("seed", int, str),
    "Model hash": ("model_hash", str, str),
    "Model": ("model", str, str),
    "VAE hash": ("vae_hash", str, str),
    "VAE": ("vae", str, str),
    "Variation seed": ("variation_seed", int, str),
    "Variation seed strength": ("variation_seed_strength", float, format_number),
    "Denoising strength": ("denoising_strength", float, format_number),
    "Clip skip": ("clip_skip", int, str),
    "Tiling": ("tiling", lambda s: {"true": True, "false": False}[s.lower()], str),
    "Mask blur": ("mask_blur", int, str),
    "Hires upscale": ("hires_upscale", float, format_number),
    "Hires resize": ("hires_resize", _parse_size, _format_size),
    "Hires steps": ("hires_steps", int, str),
    "Hires upscaler": ("hires_upscaler", str, str),
    "Lora hashes": ("lora_hashes", parse_hashes, format_hashes),
    "TI hashes": ("ti_hashes", parse_hashes, format_hashes),
    "Version": ("version", str, str),
}


def _params(info: Infotext) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, (attr, parse, fmt) in _TYPED.items():
        v = getattr(info, attr)
        if v is None or v == {}:
            continue
        if key == "Clip skip" and v <= 1:
            continue  # A1111 writes Clip skip only above 1
        text = fmt(v)
        raw = info.raw.get(key)
        if raw is not None and raw != text:
            # Keep the original spelling ("7.0", hash lists with odd spacing) while it still
            # means the same value.
            try:
                if parse(raw) == v:
                    text = raw
            except (ValueError, KeyError):
                pass
        values[key] = text
    if info.width is not None and info.height is not None:
        values["Size"] = f"{info.width}x{info.height}"
    for index, entry in info.controlnets.items():
        values[_controlnet_key(info, index)] = entry.to_text()
    for key, v in info.extras.items():
        if key not in values and v is not None:
            values[key] = format_number(v) if isinstance(v, (int, float)) else str(v)

    def rank(key: str, pos: int = 0) -> float:
        # Where A1111 puts a key; unknown extras after the known ones, before Version.
        index = unit_index(key)
        if index is not None:  # units in index order, where the extension writes them
            return 1000 + _EXTRA_ORDER.index(_CONTROLNET) + index / (index + 1)
        if key in _FIXED_ORDER:
            return _FIXED_ORDER.index(key)
        if key in _EXTRA_ORDER:
            return 1000 + _EXTRA_ORDER.index(key)
        if key in _LAST_ORDER:
            return 3000 + _LAST_ORDER.index(key)
        return 2000 + pos

    # Keys read from a text keep their order; new keys slot in by rank among them.
    result = [k for k in info.order if k in values]
    fresh = sorted((k for k in values if k not in result), key=lambda k: rank(k, len(result)))
    for key in fresh:
        r = rank(key)
        idx = next((i for i, other in enumerate(result) if rank(other) > r), len(result))
        result.insert(idx, key)
    return {k: values[k] for k in result}


def format_infotext(info: Infotext | None = None, /, **fields_: Any) -> str:
    """The A1111 `parameters` text for `info` (or for an Infotext built from keywords)."""
    if info is None:
        info = Infotext(**fields_)
    elif fields_:
        raise TypeError("pass an Infotext or keywords, not both")
    params = ", ".join(
        key if key == value else f"{key}: {quote(value)}" for key, value in _params(info).items()
    )
    negative = f"\n{_NEGATIVE} {info.negative_prompt}" if info.negative_prompt else ""
    return f"{info.prompt}{negative}\n{params}".strip()


def parse_infotext(text: str) -> Infotext:
    """Read A1111's `parameters` text. Never raises on odd input: what cannot be typed is
    kept as text in `extras`."""
    info = Infotext()
    if not isinstance(text, str):
        return info
    *lines, last = text.strip().split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""

    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE) :].strip()
        (negative if in_negative else prompt).append(line)
    info.prompt = "\n".join(prompt)
    info.negative_prompt = "\n".join(negative)

    for key, value in _RE_PARAM.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            value = unquote(value)
        info.order.append(key)
        info.raw[key] = value
        index = unit_index(key)
        if index is not None and index not in info.controlnets:
            info.controlnets[index] = parse_entry(value)
            continue
        if key == "Size":
            m = _RE_SIZE.match(value)
            if m:
                info.width, info.height = int(m.group(1)), int(m.group(2))
                continue
        typed = _TYPED.get(key)
        if typed is not None:
            attr, parse, _ = typed
            try:
                setattr(info, attr, parse(value))
                continue
            except (ValueError, KeyError):
                pass  # keep the odd value as text below
        info.extras[key] = value
    return info


def _controlnet_key(info: Infotext, index: int) -> str:
    # A key read as "Controlnet N" (2023 builds) is written back as read.
    for key in info.order:
        if unit_index(key) == index:
            return key
    return unit_key(index)


def infotext_field_names() -> list[str]:
    """The typed keys this module knows (for documentation and tests)."""
    return ["Size", *_TYPED]


__all__ = [
    "Infotext",
    "format_hashes",
    "format_infotext",
    "format_number",
    "infotext_field_names",
    "parse_hashes",
    "parse_infotext",
    "quote",
    "unquote",
]
