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


# The folder model's Hiera: the fewest blocks and smallest windows SAM 2 runs with.
SMALLEST = {
    "num_attention_heads": 1,
    "blocks_per_stage": [1, 1, 2, 1],
    "num_attention_heads_per_stage": [1, 1, 1, 1],
    "window_size_per_stage": [4, 4, 4, 4],
    # Not a stage's first block: Hiera pools queries there, which needs a window.
    "global_attention_blocks": [3],
    "window_positional_embedding_background_size": [2, 2],
}


def config(hiera: dict = SMALLEST, decoder_heads: int = 2):
    """Sam2Config at SIDE px with 8..64-wide Hiera stages and a 32-wide decoder; `hiera`
    gives the blocks, heads and windows."""
    from transformers import Sam2Config

    s = SIDE
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 8,
                "image_size": [s, s],
                "embed_dim_per_stage": [8, 16, 32, 64],
                **hiera,
            },
            "backbone_channel_list": [64, 32, 16, 8],
            "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": s, "patch_size": 16},
        mask_decoder_config={
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_attention_heads": decoder_heads,
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


# --- the original repository's layout ---------------------------------------------------

ORIGINAL = "sam2.1_hiera_tiny.pt"  # Meta's file name; its size word picks the variant


# sam2.1_hiera_tiny's blocks, heads, windows and global blocks: what the original file does
# not record, so the loader takes them from the size in its name.
HIERA_TINY = {
    "blocks_per_stage": [1, 2, 7, 2],
    "num_attention_heads_per_stage": [1, 2, 4, 8],
    "window_size_per_stage": [8, 4, 14, 7],
    "global_attention_blocks": [5, 7, 9],
    "window_positional_embedding_background_size": [7, 7],
}


def original_config():
    """A tiny SAM 2 shaped as sam2.1_hiera_tiny (its 8 decoder heads too) at small widths
    and a SIDE px input (the released 1024 takes seconds a pass here)."""
    return config(HIERA_TINY, decoder_heads=8)


def original_model():
    from transformers import Sam2Model

    torch.manual_seed(SEED + 701)
    model = Sam2Model(original_config()).eval()
    # One Gaussian matrix, as in every converted release (the original file has one copy).
    with torch.no_grad():
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding
        )
    return model


# Sam2Model's names back to the sam2 repository's, undoing sam2_original.RENAMES and its
# MLP renumbering; applied in this order, each to what is left of the key.
_BACK = (
    (r"^vision_encoder\.neck\.convs\.(\d+)\.", r"image_encoder.neck.convs.\1.conv."),
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"\.mlp\.proj_in\.", ".mlp.layers.0."),
    (r"\.mlp\.proj_out\.", ".mlp.layers.1."),
    (r"\.layers\.0\.(weight|bias)$", r".layers.1.\1"),  # three-layer heads' middle layer
    (r"\.proj_in\.", ".layers.0."),
    (r"\.proj_out\.", ".layers.2."),
    (r"upscale_conv1", "output_upscaling.0"),
    (r"upscale_layer_norm", "output_upscaling.1"),
    (r"upscale_conv2", "output_upscaling.3"),
    (r"mask_embed\.conv1", "mask_downscaling.0"),
    (r"mask_embed\.layer_norm1", "mask_downscaling.1"),
    (r"mask_embed\.conv2", "mask_downscaling.3"),
    (r"mask_embed\.layer_norm2", "mask_downscaling.4"),
    (r"mask_embed\.conv3", "mask_downscaling.6"),
    (r"shared_embedding\.positional_embedding", "pe_layer.positional_encoding_gaussian_matrix"),
    (r"patch_embed\.projection", "patch_embed.proj"),
    (r"\.layer_norm", ".norm"),
    (r"o_proj", "out_proj"),
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"^no_memory_embedding$", "no_mem_embed"),
)
# A few of the video model's tensors, which a real file has and the image model leaves out.
VIDEO_ONLY = {
    "maskmem_tpos_enc": (7, 1, 1, 8),
    "no_mem_pos_enc": (1, 1, 32),
    "memory_encoder.mask_downsampler.encoder.0.weight": (4, 1, 3, 3),
    "memory_attention.layers.0.self_attn.q_proj.weight": (32, 32),
    "obj_ptr_proj.layers.0.weight": (32, 32),
}


def _original_key(key: str) -> str:
    import re

    two_layer = ".mlp." in key
    for pattern, repl in _BACK:
        if two_layer and pattern.startswith(r"\.layers\.0"):
            continue  # a two-layer MLP has no middle layer
        key = re.sub(pattern, repl, key)
    return key


def to_original(state: dict) -> dict:
    """A Sam2Model state dict in the sam2 repository's layout, with video-only tensors."""
    out = {}
    for key, value in state.items():
        if key == "shared_image_embedding.positional_embedding":
            continue  # the original keeps one copy, in the prompt encoder
        if key == "prompt_encoder.point_embed.weight":
            for i, row in enumerate(value):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = row[None].clone()
            continue
        out[_original_key(key)] = value.clone()
    gen = torch.Generator().manual_seed(SEED + 702)
    out |= {k: torch.randn(shape, generator=gen) for k, shape in VIDEO_ONLY.items()}
    return out


def save_original(folder: Path, model=None) -> Path:
    """The tiny original-layout model as Meta ships it: {"model": state dict} pickled."""
    path = Path(folder) / ORIGINAL
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": to_original((model or original_model()).state_dict())}, path)
    return path
