"""Cheap previews: latents to RGB by a fixed linear map, no VAE and no extra weights; and
fetching any preview from the GPU without stalling it.

The 4 x 3 factors (each family spec's `latent_rgb`) are the well-known approximations (A1111's "Approx cheap",
also used by ComfyUI): good enough to see composition and colour while a job runs, at a
cost of one small matmul per preview.

A preview made with `.cpu()` in the step callback would make the CPU wait for the GPU to
finish the step, every step: the CPU could no longer queue the next step's kernels (or
replay its CUDA graph) while the GPU works, and at ~7 ms a step that wait is the
measurable part of a preview. So previews are computed on the device, copied into pinned
memory without blocking, and handed out at a later step's callback once the copy's event
has completed (`DeviceFetch`); on the CPU they are ready at once.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from dreamwire.backend.families import spec_for


def latents_to_rgb_tensor(
    latents: torch.Tensor, family: str = "sd1", max_side: int = 256
) -> torch.Tensor:
    """First image of a B x 4 x h x w latent batch as a small h x w x 3 uint8 tensor on the
    latents' device (nothing waits for the device)."""
    lat = latents[0].detach()
    step = max(1, -(-max(lat.shape[-2:]) // max_side))
    lat = lat[:, ::step, ::step].float()
    spec = spec_for(family)
    factors = torch.tensor(spec.latent_rgb, device=lat.device)
    bias = torch.tensor(spec.latent_rgb_bias, device=lat.device)
    rgb = torch.einsum("chw,ck->hwk", lat[: factors.shape[0]], factors) + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


def unpack_patches(
    latents: torch.Tensor, height: int, width: int, vae_scale: int
) -> torch.Tensor | None:
    """B x tokens x (C*4) latents packed as 2x2 patches (Flux's sampler loop) back to
    B x C x h x w, for an image of height x width pixels (diffusers' packing order). A
    stack of frames (Qwen-Image-Layered: the picture, then its layers) previews its first;
    None where the tokens are not of that size (the pipeline chose its own)."""
    b, tokens, packed = latents.shape
    h, w = 2 * (height // (vae_scale * 2)), 2 * (width // (vae_scale * 2))
    frame = (h // 2) * (w // 2)
    if frame == 0 or tokens % frame:
        return None
    lat = latents[:, :frame].reshape(b, h // 2, w // 2, packed // 4, 2, 2)
    lat = lat.permute(0, 3, 1, 4, 2, 5)
    return lat.reshape(b, packed // 4, h, w)


def latents_to_rgb(latents: torch.Tensor, family: str = "sd1", max_side: int = 256) -> np.ndarray:
    """As latents_to_rgb_tensor, fetched to a numpy array (waits for the device)."""
    return np.ascontiguousarray(latents_to_rgb_tensor(latents, family, max_side).cpu().numpy())


class DeviceFetch:
    """Previews (uint8 tensors) from any device to numpy, never waiting for a GPU.

    submit() starts a copy; poll() returns the newest preview whose copy has finished (older
    ones are dropped: a newer picture supersedes them), or None. At most `depth` copies are
    in flight; beyond that the oldest is dropped rather than waited for."""

    def __init__(self, depth: int = 2):
        self.depth = depth
        self._pending: deque = deque()  # (pinned host tensor, event)
        self._ready: np.ndarray | None = None

    def submit(self, image) -> None:
        if isinstance(image, np.ndarray):
            self._ready = image
            return
        if image.device.type != "cuda":
            self._ready = np.ascontiguousarray(image.cpu().numpy())
            return
        self._pending.append(self._start_copy(image))
        while len(self._pending) > self.depth:
            self._pending.popleft()

    @staticmethod
    def _start_copy(image: torch.Tensor):
        host = torch.empty(image.shape, dtype=image.dtype, pin_memory=True)
        host.copy_(image, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    def poll(self) -> np.ndarray | None:
        while self._pending and self._pending[0][1].query():
            host, _event = self._pending.popleft()
            self._ready = host.numpy()
        ready, self._ready = self._ready, None
        return ready
