"""Tiny random-weight models in the real file formats, for tests and the Quickstart.

`build_all(root)` writes an A1111-layout models root:

    ROOT/models/Stable-diffusion/tiny-sd1.safetensors   SD1.x, original LDM key layout
    ROOT/models/Stable-diffusion/tiny-sdxl.safetensors  SDXL, original LDM key layout
    ROOT/models/Stable-diffusion/tiny-sd1-diffusers/    the same SD1 weights as a diffusers folder
    ROOT/models/VAE/tiny-vae.safetensors                A1111 VAE file
    ROOT/models/ControlNet, Lora, embeddings            (dreamwire.backend.tiny.conditioning)
    ROOT/models/ESRGAN/tiny-*                           upscalers (dreamwire.backend.tiny.upscalers)
    ROOT/extensions/sd-webui-animatediff/model, ...     AnimateDiff motion modules in both
                                                        layouts (dreamwire.backend.tiny.motion_modules)
"""

from __future__ import annotations

import importlib
from pathlib import Path


def build_all(root: Path | str, *, conditioning: bool = True) -> dict[str, Path]:
    """Write every tiny model under root; returns name -> path. Deterministic: the same
    bytes on every build. conditioning=False skips the ControlNet/LoRA/embedding files."""
    from dreamwire.backend.tiny import build

    root = Path(root)
    models = root / "models"
    checkpoints = models / "Stable-diffusion"
    sd1 = build.sd1_components()
    sdxl = build.sdxl_components()
    written = {
        "tiny-sd1": build.write_sd1_checkpoint(sd1, checkpoints / "tiny-sd1.safetensors"),
        "tiny-sdxl": build.write_sdxl_checkpoint(sdxl, checkpoints / "tiny-sdxl.safetensors"),
        "tiny-sd1-diffusers": build.write_diffusers_folder(sd1, checkpoints / "tiny-sd1-diffusers"),
        "tiny-vae": build.write_vae_file(_reseeded_vae(), models / "VAE" / "tiny-vae.safetensors"),
    }
    from dreamwire.backend.tiny import upscalers

    written.update(upscalers.build(root))
    from dreamwire.backend.tiny import motion_modules

    written.update(motion_modules.build(root))
    for sub in ("ControlNet", "Lora", "embeddings"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    if not conditioning:
        return written
    try:
        conditioning = importlib.import_module("dreamwire.backend.tiny.conditioning")
    except ModuleNotFoundError as exc:
        if exc.name != "dreamwire.backend.tiny.conditioning":
            raise
    else:
        extra = conditioning.build(root)
        if isinstance(extra, dict):
            written.update(extra)
    return written


def _reseeded_vae():
    """A VAE whose weights differ from the checkpoints' baked-in VAE, so a VAE swap shows."""
    import torch

    from dreamwire.backend.tiny import build

    vae = build._vae("tiny-sd1")
    torch.manual_seed(build.SEED + 100)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return vae
