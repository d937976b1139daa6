"""Progress as the docker shows it: "Step 12/20", an estimate of the time left, and a bar
that stays full while the image is decoded instead of jumping back to 0%."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

STAGES = {
    "queued": "Queued",
    "loading_model": "Loading the model",
    "compiling": "Compiling",
    "decoding": "Decoding",
    "saving": "Saving",
}


@dataclass(frozen=True)
class ProgressView:
    text: str
    value: int  # the bar's value, out of `maximum`
    maximum: int


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(0, round(seconds))
    if s < 60:
        return f"~{s} s left"
    return f"~{s // 60} min {s % 60:02d} s left"


def view(state: str, step: int, total: int, eta: float | None, detail: str = "") -> ProgressView:
    """What the bar and its text show for one Progress event (and the estimate so far)."""
    total = max(0, int(total))
    step = min(max(0, int(step)), total) if total else 0
    if state == "generating" and total:
        text = f"Step {step}/{total}"
        if eta is not None:
            text += f" · {eta_text(eta)}"
        return ProgressView(text, step, total)
    name = STAGES.get(state, state.replace("_", " ").capitalize())
    if state in ("decoding", "saving"):
        # The steps are done: a full bar, not a bar back at 0 while the VAE runs.
        return ProgressView(f"{name}…", 1, 1)
    text = f"{name}: {detail}" if detail and detail != state else name
    return ProgressView(text, 0, 1)


class StepClock:
    """Times one job's steps for the estimate: from the first step it saw, so loading the
    model (which can take longer than all the steps) does not count as step time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.job_id = ""
        self._first: tuple[int, float] | None = None  # (step, when) of the first step seen
        self._total = 0

    def observe(self, job_id: str, state: str, step: int, total: int) -> float | None:
        """Seconds left for `job_id`, or None while there is too little to go on."""
        now = self.clock()
        if job_id != self.job_id or total != self._total:
            # Another job, or another pass of this one (Hires.fix counts its own steps).
            self.job_id, self._total, self._first = job_id, total, None
        if state != "generating" or total <= 0:
            return None
        if self._first is None:
            self._first = (step, now)
            return None
        done = step - self._first[0]
        if done <= 0:
            return None
        per_step = (now - self._first[1]) / done
        return per_step * max(0, total - step)
