"""spandrel (chaiNNer's model loader, the one ComfyUI, Forge and Krita AI Diffusion use)
imported so that it works without torchvision.

spandrel imports torchvision at import time for two architectures only: LaMa (inpainting,
`rotate`) and RestoreFormer (face restoration, `normalize`). Dreamwire runs neither, and on
a CPU-only install there is no torchvision that matches the CPU build of torch (PyPI's
Linux wheels are CUDA builds and fail to load against it). So when torchvision cannot be
imported, spandrel is imported against a stand-in that holds just those three names, each
refusing to run, and the stand-in is taken out of sys.modules again at once: transformers
and anything else still see no torchvision."""

from __future__ import annotations

import sys
import types
from functools import cache


class TorchvisionMissing(RuntimeError):
    pass


def _refuse(*_args, **_kwargs):
    raise TorchvisionMissing("this spandrel architecture needs torchvision, which is not installed")


def _stand_in() -> dict[str, types.ModuleType]:
    import enum

    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = enum.Enum(  # type: ignore[attr-defined]
        "InterpolationMode", "NEAREST BILINEAR BICUBIC"
    )
    functional.rotate = _refuse  # type: ignore[attr-defined]
    functional.normalize = _refuse  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    return {
        "torchvision": root,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


def _torchvision_works() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # a CUDA wheel against CPU torch raises RuntimeError, not ImportError
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


@cache
def spandrel() -> types.ModuleType:
    """The spandrel package, imported once."""
    if _torchvision_works():
        import spandrel as module

        return module
    stand_in = _stand_in()
    sys.modules.update(stand_in)
    try:
        import spandrel as module
    finally:
        for name in stand_in:
            sys.modules.pop(name, None)
    return module
