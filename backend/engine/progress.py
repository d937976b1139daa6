"""Per-step reporting and cancellation for one job, across all its passes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.result import Progress

from .preview import latents_to_rgb


@dataclass
class Reporter:
    job_id: str
    on_progress: Callable[[Progress], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    preview_every: int = 0
    family: str = "sd1"
    total: int = 0  # sampling steps of all passes together
    done: int = 0  # steps finished in earlier passes
    # latents -> uint8 RGB preview (e.g. TAESD, set by the fast path); None: latent approx.
    previewer: Callable[[Any], Any] | None = None

    def state(self, state: str, message: str = "") -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(self.job_id, state, self.done, self.total, message=message))

    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise DreamwireError(ErrorCode.CANCELLED, "cancelled by request", self.job_id)

    def step(self, step: int, latents=None) -> None:
        """`step` counts sampling steps finished in the current pass (1-based)."""
        if self.on_progress is None:
            return
        overall = self.done + step
        preview = None
        if self.preview_every and latents is not None and overall % self.preview_every == 0:
            if self.previewer is not None:
                preview = self.previewer(latents)
            else:
                preview = latents_to_rgb(latents, self.family)
        self.on_progress(Progress(self.job_id, "generating", overall, self.total, preview))

    def finish_pass(self, steps: int) -> None:
        self.done += steps
