"""A1111's `<lora:name:weight>` prompt tags: what the LoRA picker writes into the prompt
and what a style's LoRAs become (the backend reads the tags, PROTOCOL.md)."""

from __future__ import annotations

import re

# <lora:name> or <lora:name:weight> (A1111 also allows more fields after the weight).
_TAG = re.compile(r"<lora:([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>", re.IGNORECASE)
WEIGHT_RANGE = (-2.0, 3.0)  # the picker's slider; a typed tag may hold anything


def weight_text(weight: float) -> str:
    """0.8 for 0.8000001, 1 for 1.0: two decimals at most, as a slider sets them."""
    return f"{round(float(weight), 2):g}"


def format_tag(name: str, weight: float = 1.0) -> str:
    return f"<lora:{name}:{weight_text(weight)}>"


def prompt_loras(prompt: str) -> list[tuple[str, float]]:
    """The LoRAs a prompt's tags name, with their weights (1 where none is given or it
    is not a number, as A1111 reads them)."""
    out = []
    for m in _TAG.finditer(prompt):
        try:
            weight = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            weight = 1.0
        out.append((m.group(1).strip(), weight))
    return out


def insert_lora(prompt: str, name: str, weight: float) -> str:
    """The prompt with `name` at `weight`: an existing tag for it takes the new weight
    (the first one, case aside), else the tag goes at the end."""
    if not name or any(c in name for c in "<>:"):
        raise ValueError(f"{name!r} is not a LoRA name")
    want = name.strip().lower()
    for m in _TAG.finditer(prompt):
        if m.group(1).strip().lower() == want:
            return prompt[: m.start()] + format_tag(m.group(1), weight) + prompt[m.end() :]
    text = prompt.rstrip()
    return f"{text} {format_tag(name, weight)}" if text else format_tag(name, weight)


def parse_list(text: str) -> list[tuple[str, float]]:
    """ "detail:0.6, film grain" (the style dialog's LoRA field) as (name, weight) pairs;
    ValueError naming the entry that is not `name` or `name:weight`."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.rpartition(":")
        if not sep:
            name, weight = part, "1"
        name = name.strip()
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"LoRA {part!r}: write name:weight, e.g. detail:0.6") from None
        if not name or any(c in name for c in "<>:"):
            raise ValueError(f"LoRA {part!r}: write name:weight, e.g. detail:0.6")
        out.append((name, value))
    return out


def list_text(loras: list[tuple[str, float]]) -> str:
    return ", ".join(f"{name}:{weight_text(w)}" for name, w in loras)
