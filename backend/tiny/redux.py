"""A tiny Flux Redux pair, in the files ComfyUI keeps:

    models/clip_vision/tiny-sigclip_vision.safetensors   transformers' SiglipVisionModel keys
                                                         (as sigclip_vision_patch14_384: no
                                                         class token, no pre-layernorm),
                                                         64 wide, 32 px in 8 px patches
    models/style_models/tiny-flux1-redux.safetensors     redux_up 64 -> 96, redux_down 96 -> 32:
                                                         tiny-flux's T5 width
                                                         (joint_attention_dim 32)

Weights are seeded, so the same call writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors, state_of

SEED = 20261207
SIGLIP_WIDTH = 64
T5_WIDTH = 32  # models/configs/tiny-flux/transformer joint_attention_dim
SIGLIP_FILE = "tiny-sigclip_vision.safetensors"
REDUX_FILE = "tiny-flux1-redux.safetensors"


def siglip():
    """A SiglipVisionModel as the library loads it back (1 head: 64 wide, 64 per head)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(SEED)
    config = SiglipVisionConfig(
        hidden_size=SIGLIP_WIDTH,
        intermediate_size=2 * SIGLIP_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=1,
        image_size=32,
        patch_size=8,
    )
    return SiglipVisionModel(config).eval()


def redux(t5_width: int = T5_WIDTH):
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder

    torch.manual_seed(SEED + 1)
    return ReduxImageEncoder(redux_dim=SIGLIP_WIDTH, txt_in_features=t5_width).eval()


def write_redux_files(models: Path) -> tuple[Path, Path]:
    """(the SigLIP file, the Redux file) under a `models` folder."""
    # ComfyUI's file names every weight under `vision_model.` (transformers' checkpoint
    # prefix), which SiglipVisionModel's own state dict leaves out.
    weights = {f"vision_model.{k}": v for k, v in state_of(siglip()).items()}
    encoder = save_tensors(weights, models / "clip_vision" / SIGLIP_FILE)
    embedder = save_tensors(state_of(redux()), models / "style_models" / REDUX_FILE)
    return encoder, embedder
