"""Live previews through TAESD (a tiny VAE decoder) when its weights are in the models folder.

TAESD decodes the diffusion latents themselves (no 1/0.18215 scaling) into a real-looking
image for about 1 % of the full VAE's cost. A1111 keeps it in models/VAE-approx/
(taesd_decoder.pth, taesdxl_decoder.pth); ComfyUI in models/vae_approx/ (.pth or
.safetensors). Both the original decoder-only key layout ("1.weight", "3.conv.0.weight":
a Sequential whose index 0 is the parameter-free clamp) and diffusers' AutoencoderTiny
layout ("decoder.layers.0.weight") are read. Without a file the engine keeps the
latent-to-RGB approximation in preview.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.families import spec_for

log = logging.getLogger("dreamwire.taesd")

FOLDERS = ("VAE-approx", "vae_approx")
SUFFIXES = (".safetensors", ".pth", ".pt")


def find(roots: Iterable[Path], family: str) -> Path | None:
    """The TAESD decoder file for a family (its spec's stems, best first) under any root, or None."""
    stems = spec_for(family).taesd_stems
    for root in roots:
        root = Path(root).expanduser()
        for base in (root / "models", root):
            for folder_name in FOLDERS:
                folder = base / folder_name
                if not folder.is_dir():
                    continue
                files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
                for stem in stems:
                    for suffix in SUFFIXES:
                        if (stem + suffix) in files:
                            return files[stem + suffix]
    return None


_ORIGINAL = re.compile(r"^(\d+)\.(.+)$")


def decoder_state_dict(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of diffusers' DecoderTiny ("layers.N...") from either file layout."""
    out: dict[str, torch.Tensor] = {}
    if any(k.startswith("decoder.") for k in raw):
        for k, v in raw.items():
            if k.startswith("decoder."):
                out[k.removeprefix("decoder.")] = v
        return out
    for k, v in raw.items():
        m = _ORIGINAL.match(k)
        if m is None:
            raise ValueError(f"not a TAESD decoder key: {k}")
        # The original Sequential starts with a clamp module that diffusers folds into forward.
        out[f"layers.{int(m.group(1)) - 1}.{m.group(2)}"] = v
    return out


def _read(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from dreamwire.backend.library.pickles import safe_torch_load

    return safe_torch_load(path)


def load(path: Path, dtype: torch.dtype = torch.float32, device="cpu"):
    """An AutoencoderTiny whose decoder holds the file's weights (width from the file)."""
    from diffusers import AutoencoderTiny

    state = decoder_state_dict(_read(Path(path)))
    first = state.get("layers.0.weight")
    if first is None or first.dim() != 4:
        raise ValueError(f"{Path(path).name}: no first decoder convolution")
    width, latent_channels = int(first.shape[0]), int(first.shape[1])
    model = AutoencoderTiny(
        encoder_block_out_channels=(width,) * 4,
        decoder_block_out_channels=(width,) * 4,
        latent_channels=latent_channels,
    )
    missing, unexpected = model.decoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{Path(path).name} does not fit a TAESD decoder "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.encoder = None  # previews only decode; the encoder's weights are not in the file
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


class TaesdPreview:
    """latents (B x 4 x h x w, the pipeline's own) -> small H x W x 3 uint8 preview."""

    def __init__(self, model, max_side: int = 256):
        self.model = model
        self.max_side = max_side

    @torch.inference_mode()
    def tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """The preview as an H x W x 3 uint8 tensor on the decoder's device (no waiting)."""
        param = next(self.model.decoder.parameters())
        lat = latents[:1].detach().to(device=param.device, dtype=param.dtype)
        # Decode at preview size: shrinking the latent first keeps the cost flat at any
        # generation size (the decoder upsamples 8x).
        limit = max(1, self.max_side // 8)
        h, w = lat.shape[-2:]
        if max(h, w) > limit:
            scale = limit / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            lat = F.interpolate(lat, size=size, mode="area")
        img = self.model.decoder(lat)[0]  # -1..1
        img = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return img.permute(1, 2, 0)

    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(self.tensor(latents).cpu().numpy())


# A few files on a few devices at most; a bad file is remembered as None (warned once).
_cache: BoundedCache[TaesdPreview | None] = BoundedCache(4)


def previewer_for(roots: Iterable[Path], family: str, device, dtype) -> TaesdPreview | None:
    """A cached TAESD previewer for `family` on `device`, or None (no file, or a bad one:
    logged once, the latent approximation is used instead)."""
    path = find(roots, family)
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    key = (str(path), mtime, str(device), str(dtype))

    def make() -> TaesdPreview | None:
        try:
            return TaesdPreview(load(path, dtype, device))
        except Exception as exc:
            log.warning("TAESD preview off: %s: %s", path, exc)
            return None

    return _cache.get(key, make)[0]


def previewer_for_job(ctx) -> TaesdPreview | None:
    """The TAESD previewer for a job's model when the library's folders hold its decoder
    (any device: a ~1 M-parameter decoder run on one small latent every few steps)."""
    roots = getattr(ctx.library, "roots", None) or []
    return previewer_for(roots, ctx.model.family, ctx.device.device, ctx.device.dtype)
