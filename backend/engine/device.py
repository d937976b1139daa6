"""Where the engine runs: CUDA, then Apple MPS, then CPU; fp16 where that is safe.

The low-VRAM decision is made here too, from free memory against what the model family
needs, so the runner only asks "is this a small GPU?" and never reads device internals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from dreamwire.backend.library.weight_formats import FULL, WeightFormat
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import family as family_spec


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    dtype: torch.dtype

    @property
    def kind(self) -> str:
        return self.device.type

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return self.device.type


def pick_device(name: str | None = None) -> DeviceInfo:
    """`name` None or "auto" chooses; DREAMWIRE_DEVICE overrides the automatic choice."""
    name = name or os.environ.get("DREAMWIRE_DEVICE") or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DreamwireError(
            ErrorCode.BACKEND_UNAVAILABLE, f"unknown device {name!r}; use cuda, mps or cpu"
        ) from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
    }
    if (
        device.type == "cuda"
        and available["cuda"]
        and (device.index or 0) >= torch.cuda.device_count()
    ):
        available["cuda"] = False
    if not available.get(device.type, False):
        raise DreamwireError(
            ErrorCode.BACKEND_UNAVAILABLE, f"device {name!r} is not available on this machine"
        )
    # CPU kernels for fp16 convs are slow or missing; both GPU backends run SD in fp16
    # (DREAMWIRE_DTYPE=bf16 opts into bfloat16 where the card has it).
    from .fastpath import choose_dtype

    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = choose_dtype(device.type, bf16, os.environ.get("DREAMWIRE_DTYPE"))
    return DeviceInfo(device, dtype)


def free_memory(info: DeviceInfo) -> int | None:
    """Free accelerator memory in bytes; None where it cannot be known (CPU, MPS)."""
    if info.device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(info.device)
        return int(free)
    return None


def _native_plan(
    info: DeviceInfo,
    family: str,
    weights: WeightFormat,
    control_models: int = 0,
    variant: str = "",
):
    """The memory plan for the family's native size with the memory free now (None: no
    limit known, as on the CPU). Decided at the native size (memory_plan.choose estimates
    the peak there); larger outputs get a tiled VAE decode per pass from the fast path's
    memory check."""
    return _plan_at(free_memory(info), family, weights, control_models, variant)


def _plan_at(
    free: int | None,
    family: str,
    weights: WeightFormat,
    control_models: int = 0,
    variant: str = "",
):
    if free is None:
        return None
    from .memory_plan import choose

    side = family_spec(family).resolution.native
    return choose(
        family,
        side,
        side,
        free,
        weights=weights,
        control_models=control_models,
        variant=variant,
    )


def want_low_vram(
    info: DeviceInfo,
    family: str,
    forced: bool | None,
    weights: WeightFormat = FULL,
    control_models: int = 0,
    variant: str = "",
) -> bool:
    """`control_models`: whole denoisers a job loads beside the model's; `variant`: the
    checkpoint's, for its own memory figures (memory_plan.py)."""
    return low_vram_at(free_memory(info), family, forced, weights, control_models, variant)


def low_vram_at(
    free: int | None,
    family: str,
    forced: bool | None,
    weights: WeightFormat = FULL,
    control_models: int = 0,
    variant: str = "",
) -> bool:
    """want_low_vram for a GPU with `free` bytes free (None: not a CUDA GPU): another
    worker's, as it reported them (the Ray pool's per-actor admission)."""
    if forced is not None:
        return forced
    plan = _plan_at(free, family, weights, control_models, variant)
    return plan is not None and plan.low_vram


def want_sequential(
    info: DeviceInfo,
    family: str,
    forced: bool | None,
    weights: WeightFormat = FULL,
    control_models: int = 0,
    variant: str = "",
) -> bool:
    """Whether the memory plan wants one layer at a time on the GPU (sequential CPU
    offload: Flux bf16 on a 24 GiB card, any Flux on 8 GiB). An artist's own low-VRAM
    switch means model offload, as before."""
    if forced is not None:
        return False
    plan = _native_plan(info, family, weights, control_models, variant)
    return plan is not None and plan.sequential


def empty_cache(info: DeviceInfo) -> None:
    if info.device.type == "cuda":
        torch.cuda.empty_cache()
    elif info.device.type == "mps":
        torch.mps.empty_cache()
