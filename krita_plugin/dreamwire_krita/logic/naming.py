"""Names of the layers and groups results land in.

The prompt leads, so a Layers docker too narrow for the whole name still tells the artist
what each layer holds; the seed and the action follow after a "DW" mark.
"""

from __future__ import annotations

import re

PREFIX = "DW"
MAX_PROMPT_CHARS = 40


def short_prompt(prompt: str, limit: int = MAX_PROMPT_CHARS) -> str:
    # Weights, LoRA tags and line breaks make layer names unreadable; keep only words.
    text = re.sub(r"<[^>]*>", " ", prompt)
    text = re.sub(r"[()\[\]{}]|:\s*[\d.]+", " ", text)
    text = " ".join(text.split())
    if not text:
        return "(no prompt)"
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut + "…"


def layer_name(prompt: str, seed: int, action: str = "generate") -> str:
    tag = {"generate": "", "refine": " refine", "inpaint": " inpaint"}.get(action, f" {action}")
    return f"{short_prompt(prompt)} · {PREFIX}{tag} {seed}"


def group_name(prompt: str, count: int, action: str = "generate") -> str:
    return f"{short_prompt(prompt)} · {PREFIX} {action} ×{count}"


def stack_layer_name(index: int, count: int) -> str:
    """A layers job's layer, by its place in the stack (1 the bottom)."""
    return f"{PREFIX} layer {index + 1}/{count}"


def seed_from_layer_name(name: str) -> int | None:
    m = re.search(rf" · {PREFIX}(?: \w+)? (\d+)$", name)
    return int(m.group(1)) if m else None
