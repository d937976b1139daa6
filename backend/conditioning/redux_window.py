"""Start/end windows for tokens appended to a transformer's text sequence (Flux Redux).

The pipeline gets the widened prompt embeddings for the whole pass, and its text ids are
made from their length once; so a unit outside its window (A1111's rule: active when
start <= step/steps <= end) is left out where the transformer is called: a forward
pre-hook drops that unit's tokens from `encoder_hidden_states` and the matching rows of
`txt_ids`. Exactly as if the unit were not there for that step. The negative prompt's call
(real CFG) carries none of the tokens and passes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .window import StepClock


@dataclass(frozen=True)
class _Span:
    count: int  # the unit's tokens
    start: float
    end: float


class TokenWindows:
    def __init__(self, tokens: torch.Tensor, spans: list[_Span]):
        self.tokens = tokens  # every unit's, concatenated as the engine appends them
        self.spans = spans
        self.clock = StepClock()
        self.step_hook = self.clock.step_hook

    @classmethod
    def of(cls, units, tokens: list[torch.Tensor]) -> TokenWindows | None:
        """None when every unit is active over the whole pass (nothing to hook)."""
        spans = [
            _Span(t.shape[1], float(r.unit.start), float(r.unit.end))
            for r, t in zip(units, tokens, strict=True)
        ]
        if all(s.start <= 0.0 and s.end >= 1.0 for s in spans):
            return None
        return cls(torch.cat(tokens, dim=1), spans)

    @contextmanager
    def hooked(self, transformer) -> Iterator[None]:
        self.clock.reset()
        handle = transformer.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def _active(self) -> list[bool]:
        fraction = self.clock.fraction()
        return [s.start <= fraction <= s.end for s in self.spans]

    def _pre_hook(self, module, args, kwargs):
        text = kwargs.get("encoder_hidden_states")
        ids = kwargs.get("txt_ids")
        n = self.tokens.shape[1]
        if text is None or ids is None or text.shape[1] <= n:
            return None
        ours = self.tokens.to(device=text.device, dtype=text.dtype)
        if not torch.equal(text[:1, -n:], ours):  # the negative prompt's sequence
            return None
        active = self._active()
        if all(active):
            return None
        keep = list(range(text.shape[1] - n))
        at = text.shape[1] - n
        for span, on in zip(self.spans, active, strict=True):
            if on:
                keep += range(at, at + span.count)
            at += span.count
        index = torch.tensor(keep, device=text.device)
        kwargs = dict(kwargs)
        kwargs["encoder_hidden_states"] = text.index_select(1, index)
        kwargs["txt_ids"] = ids.index_select(ids.dim() - 2, index)
        return args, kwargs
