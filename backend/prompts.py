"""A1111's prompt language: attention weights, prompt editing, alternation, extra networks.

Semantics follow AUTOMATIC1111/stable-diffusion-webui (modules/prompt_parser.py and
modules/extra_networks.py, v1.10), re-implemented here without lark:

* ``parse_prompt_attention`` splits a prompt into ``[text, weight]`` runs: ``(x)`` x1.1,
  ``[x]`` /1.1, ``(x:1.3)``, ``\\(`` escapes, unbalanced brackets closed at the end,
  ``BREAK`` as ``["BREAK", -1]``, and equal-weight neighbours merged.
* ``prompt_schedule`` expands prompt editing ``[from:to:when]``, ``[to:when]``,
  ``[from::when]`` and alternation ``[a|b]`` into ``[[end_step, text], ...]``. A "when"
  written with a decimal point is a fraction of the steps, otherwise a step number.
* ``extract_extra_networks`` strips ``<lora:...>``, ``<lyco:...>``, ``<hypernet:...>`` (any
  ``<kind:args>`` tag) from a prompt and returns them as records.
* ``split_subprompts`` splits a prompt on ``AND`` into weighted subprompts for composable
  diffusion (``get_multicond_prompt_list``); ``a cat :1.2 AND a dog`` is two subprompts.

One deliberate difference: A1111 parses editing syntax with lark's Earley parser, whose
choice between readings of an *ambiguous* prompt (stray, unbalanced brackets such as
``a [b:3])``) depends on Python's hash seed, so A1111 itself answers differently from run
to run. This parser always takes the structured reading (``[b:3]`` is edited). Prompts that
A1111 parses one way every time are parsed the same way here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dreamwire.shared.errors import DreamwireError, ErrorCode

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

# -- attention ---------------------------------------------------------------------------

_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_TEXT_RUN = re.compile(r"[^\\()\[\]:]+")
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_ESCAPABLE = "()[]\\"


def parse_prompt_attention(text: str) -> list[list]:
    """``[[text, weight], ...]`` for a prompt, exactly as A1111 computes it.

    >>> parse_prompt_attention("an (important) word")
    [['an ', 1.0], ['important', 1.1], [' word', 1.0]]
    """
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for entry in res[start:]:
            entry[1] *= factor

    def add_text(chunk: str) -> None:
        for i, part in enumerate(_BREAK.split(chunk)):
            if i:
                res.append(["BREAK", -1])
            res.append([part, 1.0])

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            # "\(" and friends are literals; a lone backslash vanishes (A1111 does the same).
            if i + 1 < n and text[i + 1] in _ESCAPABLE:
                res.append([text[i + 1], 1.0])
                i += 2
            else:
                res.append(["", 1.0])
                i += 1
        elif c == "(":
            round_open.append(len(res))
            i += 1
        elif c == "[":
            square_open.append(len(res))
            i += 1
        elif c == ":":
            m = _WEIGHT_CLOSE.match(text, i)
            if m is not None and round_open:
                try:
                    weight = float(m.group(1))
                except ValueError:
                    raise DreamwireError(
                        ErrorCode.INVALID_PROMPT,
                        f"attention weight {m.group(1)!r} in {m.group(0)!r} is not a number",
                    ) from None
                scale_from(round_open.pop(), weight)
                i = m.end()
            elif m is not None:
                add_text(m.group(0))  # ":1.2)" with no "(" open is plain text
                i = m.end()
            else:
                add_text(":")
                i += 1
        elif c == ")":
            if round_open:
                scale_from(round_open.pop(), ROUND_MULTIPLIER)
            else:
                add_text(")")
            i += 1
        elif c == "]":
            if square_open:
                scale_from(square_open.pop(), SQUARE_MULTIPLIER)
            else:
                add_text("]")
            i += 1
        else:
            m = _TEXT_RUN.match(text, i)
            add_text(m.group(0))
            i = m.end()

    # Unclosed brackets still apply, outermost first as A1111 does.
    for start in round_open:
        scale_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale_from(start, SQUARE_MULTIPLIER)

    if not res:
        return [["", 1.0]]
    merged = [res[0]]
    for entry in res[1:]:
        if entry[1] == merged[-1][1]:
            merged[-1][0] += entry[0]
        else:
            merged.append(entry)
    return merged


# -- prompt editing and alternation --------------------------------------------------------


@dataclass
class _Edit:
    before: list | None
    after: list
    when: str  # as written; resolved to a step by _resolve_when


@dataclass
class _Alternate:
    options: list[list]


_NUMBER_END = re.compile(
    r"\s*([+-]?(?:\d+[eE][+-]?\d+|(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+))\s*\]"
)
_PLAIN_RUN = re.compile(r"[^\\\[\]():|]+")
_STRAY = "[]():"
MAX_NESTING = 150  # deeper bracket nesting is refused rather than overflowing the parser


def _check_nesting(prompt: str) -> None:
    depth = deepest = 0
    escaped = False
    for c in prompt:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]" and depth:
            depth -= 1
    if deepest > MAX_NESTING:
        raise DreamwireError(
            ErrorCode.INVALID_PROMPT,
            f"brackets are nested {deepest} deep; at most {MAX_NESTING} levels are supported",
        )


class _ScheduleParser:
    """Recursive descent over A1111's editing grammar; each rule is deterministic at a
    position, so results are memoised by position (linear time)."""

    def __init__(self, text: str):
        self.s = text
        self.n = len(text)
        self._prompt_memo: dict[int, tuple[list, int]] = {}
        self._group_memo: dict[int, tuple[list, int] | None] = {}

    def parse(self) -> list | None:
        """Top level: prompt pieces and stray bracket characters; None = unparseable."""
        out: list = []
        i = 0
        while i < self.n:
            items, j = self.prompt(i)
            if j > i:
                out.extend(items)
                i = j
            elif self.s[i] in _STRAY:
                out.append(self.s[i])
                i += 1
            else:
                return None  # a "|" outside brackets, or a trailing backslash
        return out

    def prompt(self, i: int) -> tuple[list, int]:
        memo = self._prompt_memo.get(i)
        if memo is not None:
            return memo
        start = i
        items: list = []
        while i < self.n:
            c = self.s[i]
            if c in "([":
                group = self.group(i)
                if group is None:
                    break
                sub, i = group
                items.extend(sub)
            elif c in ")]:|":
                break
            elif c == "\\":
                # An escape keeps its backslash: the attention parser reads it later.
                if i + 1 < self.n and self.s[i + 1] != "\n":
                    items.append(self.s[i : i + 2])
                    i += 2
                else:
                    break
            else:
                m = _PLAIN_RUN.match(self.s, i)
                items.append(m.group(0))
                i = m.end()
        self._prompt_memo[start] = (items, i)
        return items, i

    def group(self, i: int) -> tuple[list, int] | None:
        if i in self._group_memo:
            return self._group_memo[i]
        result = self._paren(i) if self.s[i] == "(" else self._bracket(i)
        self._group_memo[i] = result
        return result

    def _at(self, j: int) -> str:
        return self.s[j] if j < self.n else ""

    def _paren(self, i: int) -> tuple[list, int] | None:
        # "(" prompt ")"  or  "(" prompt ":" prompt ")": kept verbatim for the attention
        # parser, with any editing inside expanded.
        first, j = self.prompt(i + 1)
        if self._at(j) == ")":
            return ["(", *first, ")"], j + 1
        if self._at(j) == ":":
            second, k = self.prompt(j + 1)
            if self._at(k) == ")":
                return ["(", *first, ":", *second, ")"], k + 1
        return None

    def _bracket(self, i: int) -> tuple[list, int] | None:
        first, j = self.prompt(i + 1)
        c = self._at(j)
        if c == "]":
            return ["[", *first, "]"], j + 1
        if c == "|":
            options = [first]
            while self._at(j) == "|":
                option, j = self.prompt(j + 1)
                options.append(option)
            if self._at(j) == "]":
                return [_Alternate(options)], j + 1
            return None
        if c == ":":
            m = _NUMBER_END.match(self.s, j + 1)
            if m is not None:  # [to:when]
                return [_Edit(None, first, m.group(1))], m.end()
            second, k = self.prompt(j + 1)
            if self._at(k) == ":":
                m = _NUMBER_END.match(self.s, k + 1)
                if m is not None:  # [from:to:when]
                    return [_Edit(first, second, m.group(1))], m.end()
        return None


def _walk(nodes: list):
    for node in nodes:
        yield node
        if isinstance(node, _Edit):
            yield from _walk(node.before or [])
            yield from _walk(node.after)
        elif isinstance(node, _Alternate):
            for option in node.options:
                yield from _walk(option)


def _render(nodes: list, step: int, whens: dict[int, int]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Edit):
            chosen = (node.before or []) if step <= whens[id(node)] else node.after
            out.append(_render(chosen, step, whens))
        else:
            out.append(_render(node.options[(step - 1) % len(node.options)], step, whens))
    return "".join(out)


def prompt_schedule(
    prompt: str,
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list]:
    """``[[end_step, text], ...]``: the prompt to use up to and including each end step.

    >>> prompt_schedule("a [b:c:0.5]", 10)
    [[5, 'a b'], [10, 'a c']]

    With ``hires_steps`` the schedule is for A1111's Hires.fix second pass: a fraction
    ``1.5`` means half-way through that pass, a step ``12`` means step 2 of it when the first
    pass had 10 steps. ``use_old_scheduling`` selects A1111's pre-1.6 rule (a "when" below 1
    is a fraction, anything else a step).
    """
    if not isinstance(steps, int) or steps < 1:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"steps must be at least 1, got {steps!r}")
    if hires_steps is None or use_old_scheduling:
        int_offset, frac_offset, total = 0, 0.0, steps
    else:
        int_offset, frac_offset, total = steps, 1.0, hires_steps

    _check_nesting(prompt)
    tree = _ScheduleParser(prompt).parse()
    if tree is None:
        return [[total, prompt]]

    ends = {total}
    whens: dict[int, int] = {}
    for node in _walk(tree):
        if isinstance(node, _Edit):
            value = float(node.when)
            if use_old_scheduling:
                value = value * total if value < 1 else value
            elif "." in node.when:
                value = (value - frac_offset) * total
            else:
                value = value - int_offset
            when = min(total, int(value))
            whens[id(node)] = when
            if when >= 1:
                ends.add(when)
        elif isinstance(node, _Alternate):
            ends.update(range(1, total + 1))
    return [[end, _render(tree, end, whens)] for end in sorted(ends)]


def prompt_at_step(schedule: list[list], step: int) -> str:
    """The text in force at sampler step `step`, counted from 0 as A1111's CFG denoiser
    counts (reconstruct_cond_batch): the first entry whose end step is not before `step`.
    So with 10 steps ``[a:b:5]`` gives "a" for steps 0..5 and "b" for 6..9, as in A1111."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[0][1]


# -- extra networks -------------------------------------------------------------------------

_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")


@dataclass
class ExtraNetwork:
    """One ``<kind:arg:arg...>`` tag, with A1111's positional/named split of its args."""

    kind: str  # "lora", "lyco", "hypernet", or any other extension's tag name
    items: list[str]
    positional: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.positional[0] if self.positional else ""

    @classmethod
    def from_items(cls, kind: str, items: list[str]) -> ExtraNetwork:
        positional: list[str] = []
        named: dict[str, str] = {}
        for item in items:
            parts = item.split("=", 2)
            if len(parts) == 2:
                named[parts[0]] = parts[1]
            else:
                positional.append(item)
        return cls(kind, list(items), positional, named)

    # LoRA / LyCORIS: <lora:name:te:unet:dyn>, also te=, unet=, dyn= (A1111's Lora builtin).
    def _float(self, value: str, what: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise DreamwireError(
                ErrorCode.INVALID_PROMPT,
                f"<{self.kind}:{':'.join(self.items)}>: {what} {value!r} is not a number",
            ) from None

    @property
    def te_multiplier(self) -> float:
        te = self._float(self.positional[1], "weight") if len(self.positional) > 1 else 1.0
        return self._float(self.named["te"], "te weight") if "te" in self.named else te

    @property
    def unet_multiplier(self) -> float:
        if len(self.positional) > 2:
            unet = self._float(self.positional[2], "UNet weight")
        else:
            unet = self.te_multiplier
        return self._float(self.named["unet"], "unet weight") if "unet" in self.named else unet

    @property
    def dyn_dim(self) -> int | None:
        raw = self.named.get("dyn", self.positional[3] if len(self.positional) > 3 else None)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise DreamwireError(
                ErrorCode.INVALID_PROMPT, f"<{self.kind}:...>: dyn {raw!r} is not an integer"
            ) from None

    @property
    def multiplier(self) -> float:
        """Hypernetwork strength: <hypernet:name:strength>."""
        return self._float(self.positional[1], "strength") if len(self.positional) > 1 else 1.0

    def to_lora_ref(self):
        """The Job's LoraRef: weight is the UNet multiplier, weight_te the text encoder's
        (None when both are equal, A1111's single-number form)."""
        from dreamwire.shared.job import LoraRef

        if self.kind not in LORA_KINDS:
            raise ValueError(f"<{self.kind}:...> is not a LoRA tag")
        te, unet = self.te_multiplier, self.unet_multiplier
        return LoraRef(name=self.name, weight=unet, weight_te=None if te == unet else te)


def extract_extra_networks(prompt: str) -> tuple[str, list[ExtraNetwork]]:
    """Strip every ``<kind:args>`` tag from a prompt (A1111 replaces each with nothing) and
    return the cleaned prompt and the tags in order. Validates the LoRA and hypernetwork
    numbers so a typo is an error naming the tag, not a failure deep in the engine."""
    found: list[ExtraNetwork] = []

    def take(m: re.Match) -> str:
        net = ExtraNetwork.from_items(m.group(1), m.group(2).split(":"))
        if net.kind in LORA_KINDS:
            if not net.name:
                raise DreamwireError(ErrorCode.INVALID_PROMPT, f"{m.group(0)}: no LoRA name")
            net.te_multiplier, net.unet_multiplier, net.dyn_dim  # noqa: B018 - validate now
        elif net.kind == "hypernet":
            net.multiplier  # noqa: B018
        found.append(net)
        return ""

    return _EXTRA_NET.sub(take, prompt), found


def lora_refs(networks: list[ExtraNetwork]) -> list:
    """LoraRefs for the LoRA/LyCORIS tags among `networks`, in prompt order."""
    return [n.to_lora_ref() for n in networks if n.kind in LORA_KINDS]


# -- composable diffusion (AND) -----------------------------------------------------------

# The word AND in capitals, alone (not inside "ANDROID" or "_AND_"): A1111's re_AND.
_AND = re.compile(r"\bAND\b")
# A subprompt's text, then an optional ":number" weight at its very end, trailing
# whitespace dropped; leading whitespace stays in the text. (A1111's re_weight, whose
# "(?:\s|.)" is "." under DOTALL.) It matches any string.
_SUBPROMPT_WEIGHT = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$", re.S)


@dataclass(frozen=True)
class SubPrompt:
    """One part of a composable prompt: its text (still in the prompt language, with its
    own attention weights and editing schedule) and its weight in the guidance sum."""

    text: str
    weight: float = 1.0


def split_subprompts(prompt: str) -> list[SubPrompt]:
    """A1111's get_multicond_prompt_list for one prompt: split on ``AND`` and read each
    part's trailing ``:weight`` (default 1). Empty parts stay, as empty prompts: ``a AND``
    is "a" and "". A1111 reads the weight of a prompt without ``AND`` too, so ``a cat:0.5``
    is the one subprompt "a cat" at weight 0.5; editing brackets are not protected, since
    the split happens before anything else is parsed."""
    out = []
    for part in _AND.split(prompt):
        m = _SUBPROMPT_WEIGHT.match(part)
        text, weight = m.group(1), m.group(2)
        out.append(SubPrompt(text, float(weight) if weight is not None else 1.0))
    return out


def is_composable(parts: list[SubPrompt]) -> bool:
    """Whether the subprompts need composable guidance: more than one, or a weight that is
    not 1. (One subprompt at weight 1 is an ordinary prompt.)"""
    return len(parts) > 1 or parts[0].weight != 1.0


__all__ = [
    "ExtraNetwork",
    "LORA_KINDS",
    "MAX_NESTING",
    "SubPrompt",
    "extract_extra_networks",
    "is_composable",
    "lora_refs",
    "parse_prompt_attention",
    "prompt_at_step",
    "prompt_schedule",
    "split_subprompts",
]
