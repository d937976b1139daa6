"""Per-step reporting and cancellation for one job, across all its passes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.result import Progress

from .preview import DeviceFetch, latents_to_rgb_tensor


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
    # A previewer with a `tensor` method gives the preview on the device (see preview.py).
    previewer: Callable[[Any], Any] | None = None
    fetch: DeviceFetch = field(default_factory=DeviceFetch)

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
        if self.preview_every and latents is not None and overall % self.preview_every == 0:
            self.fetch.submit(self._render(latents))
        # On a GPU the preview of an earlier step arrives when its copy is done.
        preview = self.fetch.poll() if self.preview_every else None
        self.on_progress(Progress(self.job_id, "generating", overall, self.total, preview))

    def _render(self, latents):
        if self.previewer is None:
            return latents_to_rgb_tensor(latents, self.family)
        on_device = getattr(self.previewer, "tensor", None)
        return on_device(latents) if on_device is not None else self.previewer(latents)

    def finish_pass(self, steps: int) -> None:
        self.done += steps
