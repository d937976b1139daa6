"""Which tensors a single-file checkpoint of a catalog architecture must contain.

diffusers' `from_single_file` (without accelerate) leaves any weight the file lacks at its
random initial value and says nothing, so a damaged or partial checkpoint would silently
generate garbage. The expected names come from the catalog configs: the components are
built on the meta device (no memory) and their keys mapped to the LDM layout.
"""

from __future__ import annotations

import json
from functools import cache

from dreamwire import catalog
from dreamwire.backend.families import SPECS, spec_for
from dreamwire.backend.library import ldm_layout


@cache
def expected_checkpoint_keys(arch: str) -> frozenset[str]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = catalog.config_dir(arch)

    def cfg(name: str) -> dict:
        return json.loads((folder / name / "config.json").read_text())

    spec = spec_for(catalog.arch_info(arch)["family"])
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg("unet"))
        vae = AutoencoderKL.from_config(cfg("vae"))
        keys = set(ldm_layout.unet_to_ldm(unet.state_dict(), cfg("unet")))
        keys |= set(ldm_layout.vae_to_ldm(vae.state_dict(), cfg("vae")))
        for text in spec.single_file_text:  # the family's text encoders, in their layouts
            model_cls = CLIPTextModelWithProjection if text.projection else CLIPTextModel
            model = model_cls(CLIPTextConfig(**cfg(text.component)))
            to_ldm = (
                ldm_layout.open_clip_to_ldm
                if text.layout == "open_clip"
                else ldm_layout.clip_to_ldm
            )
            keys |= set(to_ldm(model.state_dict(), text.prefix))
    return frozenset(keys)


# Where the families' single files keep a Hugging Face-layout CLIP text encoder.
_CLIP_PREFIXES = tuple(
    dict.fromkeys(
        t.prefix for spec in SPECS.values() for t in spec.single_file_text if t.layout == "clip"
    )
)


def _normalise(key: str) -> str:
    # Checkpoints saved with older transformers lack the `text_model.` level; diffusers
    # reads both spellings, so both count as present.
    for prefix in _CLIP_PREFIXES:
        if key.startswith(prefix) and not key.startswith(prefix + "text_model."):
            return prefix + "text_model." + key[len(prefix) :]
    return key


def missing_checkpoint_keys(arch: str, present) -> list[str]:
    return sorted(expected_checkpoint_keys(arch) - {_normalise(k) for k in present})


@cache
def expected_vae_keys(arch: str) -> frozenset[str]:
    """VAE tensor names without prefix, as an A1111 VAE file stores them."""
    import torch
    from diffusers import AutoencoderKL

    config = json.loads((catalog.config_dir(arch) / "vae" / "config.json").read_text())
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(config)
    return frozenset(ldm_layout.vae_to_ldm(vae.state_dict(), config, prefix=""))


def missing_vae_keys(arch: str, present) -> list[str]:
    present = set(present)
    for prefix in ("first_stage_model.", "vae."):
        if any(k.startswith(prefix) for k in present):
            present = {k.removeprefix(prefix) for k in present}
            break
    return sorted(expected_vae_keys(arch) - present)
