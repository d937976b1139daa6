"""SAM 2's original checkpoints as transformers' Sam2Model.

Meta ships sam2_hiera_{tiny,small,base_plus,large}.pt and sam2.1_hiera_*.pt as a torch
pickle {"model": state dict} in the sam2 repository's layout (image_encoder.trunk.*,
sam_prompt_encoder.*, sam_mask_decoder.*, plus the video model's memory parts); ComfyUI's
SAM 2 nodes use the same files, or the same keys as .safetensors. A pickle is opened only
by torch's weights-only unpickler (library/pickles.py).

Keys are renamed as transformers' own convert_sam2_to_hf.py renames them (its
KEYS_TO_MODIFY_MAPPING and the MLP / neck renumbering), the four point embeddings stacked
into one table and the prompt encoder's Gaussian matrix shared with the image embedding;
the video model's memory encoder, memory attention and object pointers are left out (the
image model has none). The checkpoint does not carry its configuration: the sizes
(widths, blocks per stage, FPN and decoder widths) are read from the tensors, and what
the tensors cannot tell (attention heads, windows, global-attention blocks, the 1024 px
input) comes from the released variant the file is named after, as the converter's
get_config takes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

# convert_sam2_to_hf.py's KEYS_TO_MODIFY_MAPPING, in its order (each applied in turn), less
# the entries for the video model's parts and for SAM 1's neck, which never match here.
RENAMES = (
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
)
# Two-layer MLPs (layers.0 / layers.1 -> proj_in / proj_out) and three-layer heads
# (layers.0 / .1 / .2 -> proj_in / layers.0 / proj_out), as the converter renumbers them.
_TWO = re.compile(
    r"(vision_encoder\.backbone\.blocks\.\d+\.mlp|mask_decoder\.transformer\.layers\.\d+\.mlp)"
    r"\.layers\.([01])\."
)
_THREE = re.compile(
    r"(mask_decoder\.pred_obj_score_head|mask_decoder\.output_hypernetworks_mlps\.\d+)"
    r"\.layers\.([012])\."
)
_NECK = re.compile(r"(vision_encoder\.neck\.convs\.\d+)\.conv\.")
# What Sam2Model (the image model) holds; the rest of a video checkpoint is left out.
IMAGE_PARTS = ("vision_encoder.", "prompt_encoder.", "mask_decoder.", "no_memory_embedding")

# What the tensors cannot tell, per released variant (convert_sam2_to_hf.get_config).
VARIANTS = {
    "tiny": {"heads": [1, 2, 4, 8], "windows": [8, 4, 14, 7], "global": [5, 7, 9]},
    "small": {"heads": [1, 2, 4, 8], "windows": [8, 4, 14, 7], "global": [7, 10, 13]},
    "base_plus": {"heads": [2, 4, 8, 16], "windows": [8, 4, 14, 7], "global": [12, 16, 20]},
    "large": {"heads": [2, 4, 8, 16], "windows": [8, 4, 16, 8], "global": [23, 33, 43]},
}
IMAGE_SIZE = 1024
DECODER_HEADS = 8


def rename(key: str) -> str:
    for old, new in RENAMES:
        if old in key:
            key = key.replace(old, new)
    key = _TWO.sub(lambda m: f"{m[1]}.{('proj_in', 'proj_out')[int(m[2])]}.", key)
    key = _THREE.sub(lambda m: f"{m[1]}.{('proj_in', 'layers.0', 'proj_out')[int(m[2])]}.", key)
    return _NECK.sub(r"\1.", key)


def to_transformers(state: dict) -> dict:
    """The image model's tensors of an original SAM 2 state dict under Sam2Model's names."""
    import torch

    out = {}
    for key, value in state.items():
        new = rename(key)
        if new.startswith(IMAGE_PARTS):
            out[new] = value
    points = [f"prompt_encoder.point_embed.{i}.weight" for i in range(4)]
    if all(p in out for p in points):
        out["prompt_encoder.point_embed.weight"] = torch.cat([out.pop(p) for p in points])
    gaussian = out.get("prompt_encoder.shared_embedding.positional_embedding")
    if gaussian is not None:
        out["shared_image_embedding.positional_embedding"] = gaussian
    return out


def variant(path: Path) -> str:
    """The released size a file is named after (sam2.1_hiera_base_plus.pt -> base_plus)."""
    name = path.name.lower().replace("-", "_").replace("b+", "base_plus")
    for size in sorted(VARIANTS, key=len, reverse=True):
        if f"hiera_{size}" in name:
            return size
    raise DreamwireError(
        ErrorCode.MODEL_UNSUPPORTED,
        f"{path.name}: an original SAM 2 checkpoint is read by the size in its name "
        f"(sam2.1_hiera_{{{','.join(VARIANTS)}}}.pt, as Meta names them); rename it so",
    )


def config_of(state: dict, size: str, image_size: int = IMAGE_SIZE):
    """Sam2Config for a converted state dict: sizes from the tensors, the rest from `size`
    (and the input side, 1024 for every release)."""
    from transformers import Sam2Config

    v = VARIANTS[size]
    try:
        prefix = "vision_encoder.backbone"
        blocks = 1 + max(
            int(m[1]) for k in state if (m := re.match(rf"{prefix}\.blocks\.(\d+)\.", k))
        )
        # A stage's first block (after the first stage) changes the width, with a proj.
        firsts = [0] + [b for b in range(blocks) if f"{prefix}.blocks.{b}.proj.weight" in state]
        per_stage = [b - a for a, b in zip(firsts, [*firsts[1:], blocks], strict=True)]
        dims = [int(state[f"{prefix}.blocks.{b}.mlp.proj_out.weight"].shape[0]) for b in firsts]
        background = list(state[f"{prefix}.pos_embed"].shape[-2:])
        window0 = int(state[f"{prefix}.pos_embed_window"].shape[-1])
        fpn = int(state["vision_encoder.neck.convs.0.weight"].shape[0])
        hidden = int(state["mask_decoder.iou_token.weight"].shape[1])
        mlp = int(state["mask_decoder.transformer.layers.0.mlp.proj_in.weight"].shape[0])
        iou_hidden = int(state["mask_decoder.iou_prediction_head.proj_in.weight"].shape[0])
        masks = int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1
        mask_channels = int(state["prompt_encoder.mask_embed.conv2.weight"].shape[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"not a SAM 2 checkpoint (no {exc})") from exc
    if len(per_stage) != 4:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"a SAM 2 image encoder has 4 stages, this one {len(per_stage)}",
        )
    side = image_size // 4
    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": dims[0],
                "image_size": [image_size, image_size],
                "blocks_per_stage": per_stage,
                "embed_dim_per_stage": dims,
                "num_attention_heads_per_stage": v["heads"],
                "window_size_per_stage": [window0, *v["windows"][1:]],
                "global_attention_blocks": v["global"],
                "window_positional_embedding_background_size": background,
            },
            "backbone_channel_list": dims[::-1],
            "backbone_feature_sizes": [[side, side], [side // 2, side // 2], [side // 4] * 2],
            "fpn_hidden_size": fpn,
        },
        prompt_encoder_config={
            "hidden_size": hidden,
            "image_size": image_size,
            "mask_input_channels": mask_channels,
        },
        mask_decoder_config={
            "hidden_size": hidden,
            "mlp_dim": mlp,
            "num_attention_heads": DECODER_HEADS,
            "iou_head_hidden_dim": iou_hidden,
            "num_multimask_outputs": masks,
        },
    )


def read(path: Path) -> dict:
    """The state dict of an original file: a weights-only pickle's "model", or safetensors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"{path.name} could not be read: {exc}"
            ) from exc
    from dreamwire.backend.library.pickles import safe_torch_load

    data = safe_torch_load(path)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{path.name} holds no SAM 2 state dict")
    return state


def load(path: Path, image_size: int = IMAGE_SIZE):
    """Sam2Model with an original checkpoint's weights, every image-model tensor loaded."""
    from transformers import Sam2Model

    state = to_transformers(read(path))
    model = Sam2Model(config_of(state, variant(path), image_size))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{path.name}: the weights do not fit SAM 2 (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})",
        )
    return model
