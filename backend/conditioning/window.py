"""Where a pass is, for units' start/end windows (A1111's guidance start and end).

ControlNet, T2I-Adapter and IP-Adapter units are each active over a window of the sampling
steps, as a fraction of the pass. One clock keeps that bookkeeping for every kind: the
engine reports the step through `set_step` (from its step hook); a stack used on its own,
outside the engine, counts its model calls instead (`tick`).
"""

from __future__ import annotations


class StepClock:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.total = 0
        self.calls = 0
        self.external = False  # True once the engine reports steps

    def set_step(self, step: int, total: int) -> None:
        self.step, self.total, self.external = step, total, True

    def step_hook(self, ctx, pipe, step: int, total: int, tensors: dict) -> None:
        """The engine's step hook (JobContext.step_hooks): each kind's stack registers its
        clock's, by the kind's name."""
        self.set_step(step, total)

    def fraction(self) -> float:
        step = self.step if self.external else self.calls
        return step / self.total if self.total > 0 else 0.0

    def tick(self) -> float:
        """The fraction for this model call, counting the call (for stacks on their own)."""
        fraction = self.fraction()
        self.calls += 1
        return fraction
