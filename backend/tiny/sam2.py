"""A tiny random SAM 2 saved as transformers saves facebook/sam2.1-hiera-*: a folder with
config.json (model_type "sam2") and model.safetensors. The network keeps SAM 2's shape
(a four-stage Hiera with one global-attention block, the FPN neck, prompt encoder and
two-way mask decoder) at a 128 px input instead of 1024, so a forward pass is milliseconds."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.build import SEED

SIDE = 128
FOLDER = "sam2.1-hiera-tiny"  # the name the released transformers folder has


def config():
    from transformers import Sam2Config

    s = SIDE
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 8,
                "num_attention_heads": 1,
                "image_size": [s, s],
                "blocks_per_stage": [1, 1, 2, 1],
                "embed_dim_per_stage": [8, 16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 1, 1],
                "window_size_per_stage": [4, 4, 4, 4],
                # Not a stage's first block: Hiera pools queries there, which needs a window.
                "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [2, 2],
            },
            "backbone_channel_list": [64, 32, 16, 8],
            "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": s, "patch_size": 16},
        mask_decoder_config={
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
    )


def model():
    from transformers import Sam2Model

    torch.manual_seed(SEED + 700)
    return Sam2Model(config()).eval()


def save(folder: Path) -> Path:
    """The tiny model as `folder/sam2.1-hiera-tiny/`."""
    path = Path(folder) / FOLDER
    model().save_pretrained(str(path))
    return path
