"""What an upscaler file holds, told by spandrel's architecture detection (the same that
ComfyUI, Forge, A1111 1.9+ and Krita AI Diffusion use): ESRGAN in all its key layouts
(original "model.N", BSRGAN, Real-ESRGAN / BasicSR, x4/x2/x1), Real-ESRGAN Compact, SwinIR,
Swin2SR, HAT, DAT, OmniSR, SPAN, RealPLKSR, ATD and the rest of spandrel's registry.

Dreamwire reads the file itself (safetensors, or a .pth through the library's weights-only
unpickler) and hands spandrel only the resulting tensor dict: spandrel never opens a file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dreamwire.shared.errors import DreamwireError, ErrorCode

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class UpscalerKind:
    """spandrel's reading of a file: the architecture, and when the shapes tell it, the
    native factor and whether Dreamwire can run it as an image upscaler."""

    arch: str  # spandrel's architecture name ("ESRGAN", "RealESRGAN Compact", "SPAN", ...)
    scale: int | None = None
    runnable: bool = True

    @property
    def label(self) -> str:
        if self.scale is None:
            return self.arch
        return f"{self.arch} {self.scale}x"


def unwrap(data, name: str = "upscaler") -> dict[str, torch.Tensor]:
    """The flat tensor dict: BasicSR's {"params_ema": ..} / {"params": ..} wrappers and
    {"state_dict": ..} taken off, DataParallel's "module." prefix dropped."""
    for _ in range(3):
        if not isinstance(data, dict):
            break
        inner = next((data[k] for k in ("params_ema", "params", "state_dict") if k in data), None)
        if not isinstance(inner, dict):
            break
        data = inner
    import torch

    if not isinstance(data, dict) or not data:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{name} holds no weights")
    state = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = str(key)
        state[key[7:] if key.startswith("module.") else key] = value
    if not state:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{name} holds no tensors")
    return state


def detect(state: dict) -> str | None:
    """spandrel's name for the architecture of a state dict, None when it knows none."""
    from dreamwire.backend.library.spandrel_support import spandrel

    for support in spandrel().MAIN_REGISTRY.architectures("detection"):
        if support.detect(state):
            return support.architecture.name
    return None


def runnable(descriptor) -> bool:
    """Whether Dreamwire runs a loaded spandrel model as an upscaler: an RGB image-to-image
    model (SR or restoration); face-crop models (GFPGAN...) and inpainting models are not."""
    from dreamwire.backend.library.spandrel_support import spandrel

    return (
        isinstance(descriptor, spandrel().ImageModelDescriptor)
        and descriptor.purpose in ("SR", "Restoration")
        and descriptor.input_channels == 3
        and descriptor.output_channels == 3
    )


def describe(shapes: dict[str, list[int]]) -> str:
    """A short label for a file from its tensors' shapes (a safetensors header): "ESRGAN
    4x", "RealESRGAN Compact 4x", "SPAN 2x"; "unknown" when spandrel knows no such layout."""
    return kind_of(shapes).label


def kind_of(shapes: dict[str, list[int]]) -> UpscalerKind:
    """spandrel's detection over a header's shapes, then its loader on the meta device
    (hyperparameters come from shapes, no weights are read); the architecture name alone
    when the loader needs tensor values."""
    import torch

    state = {k: torch.empty(tuple(v), device="meta") for k, v in shapes.items()}
    arch = detect(state)
    if arch is None:
        return UpscalerKind("unknown", runnable=False)
    from dreamwire.backend.library.spandrel_support import spandrel

    try:
        with torch.device("meta"):
            descriptor = spandrel().MAIN_REGISTRY.load(state)
    except Exception:  # any loader failure (values needed, odd shapes) leaves the name
        return UpscalerKind(arch)
    return UpscalerKind(arch, descriptor.scale, runnable(descriptor))
