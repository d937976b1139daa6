"""Depth Anything v2 (Yang et al. 2024), the default depth preprocessor, run with
transformers' DepthAnythingForDepthEstimation.

Weights, from the artist's installs or Dreamwire's annotator folder (annotator_files.py):
  A1111 ControlNet    depth_anything_v2/depth_anything_v2_vit{l,b,s}.safetensors
  ComfyUI             depth-anything/Depth-Anything-V2-{Large,Base,Small}/depth_anything_v2_vit{l,b,s}.pth
  transformers        Depth-Anything-V2-{Large,Base,Small}-hf/ (config.json + model.safetensors)
The first two are the original repository's layout (`pretrained.*` DINOv2 backbone,
`depth_head.*` DPT head); their keys are renamed to transformers' on load (the renaming of
transformers' own conversion script) and the network's sizes are read from the tensors.
A .pth is opened only by the library's weights-only unpickler.

The run is transformers' depth-estimation pipeline: DPT's processor (shorter side 518 with
the aspect ratio kept, sides multiples of 14, bicubic, ImageNet normalisation), the model,
post_process_depth_estimation back to the image size; then the relative depth (larger is
nearer) is stretched min..max to 0..255 as the A1111 and ComfyUI annotators do."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode

SIZES = (("l", "Large"), ("b", "Base"), ("s", "Small"))
CANDIDATES = (
    *(f"depth_anything_v2/depth_anything_v2_vit{s}.safetensors" for s, _ in SIZES),
    *(f"depth-anything/Depth-Anything-V2-{n}/depth_anything_v2_vit{s}.pth" for s, n in SIZES),
    *(f"Depth-Anything-V2-{n}-hf" for _, n in SIZES),
    *(f"depth_anything_v2_vit{s}.{ext}" for s, _ in SIZES for ext in ("safetensors", "pth")),
)
INPUT_SIDE = 518
# The original code's intermediate layers (0-based) per backbone width; transformers'
# out_indices count from 1 (index 0 is the embeddings).
OUT_INDICES = {384: [3, 6, 9, 12], 768: [3, 6, 9, 12], 1024: [5, 12, 18, 24]}

_RENAMES = (
    (r"pretrained\.cls_token", "backbone.embeddings.cls_token"),
    (r"pretrained\.mask_token", "backbone.embeddings.mask_token"),
    (r"pretrained\.pos_embed", "backbone.embeddings.position_embeddings"),
    (r"pretrained\.patch_embed\.proj\.", "backbone.embeddings.patch_embeddings.projection."),
    (
        r"pretrained\.blocks\.(\d+)\.ls(\d)\.gamma",
        r"backbone.encoder.layer.\1.layer_scale\2.lambda1",
    ),
    (r"pretrained\.blocks\.(\d+)\.attn\.proj\.", r"backbone.encoder.layer.\1.attention.o_proj."),
    (r"pretrained\.blocks\.(\d+)\.(norm\d|mlp\.fc\d)\.", r"backbone.encoder.layer.\1.\2."),
    (r"pretrained\.norm\.", "backbone.layernorm."),
    (r"depth_head\.projects\.(\d)\.", r"neck.reassemble_stage.layers.\1.projection."),
    (r"depth_head\.resize_layers\.(\d)\.", r"neck.reassemble_stage.layers.\1.resize."),
    (r"depth_head\.scratch\.layer(\d)_rn\.", None),  # neck.convs.{n-1}
    (r"depth_head\.scratch\.refinenet(\d)\.", None),  # neck.fusion_stage.layers.{4-n}
    (r"depth_head\.scratch\.output_conv1\.", "head.conv1."),
    (r"depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
    (r"depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
)
_QKV = re.compile(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def _rename(key: str) -> str:
    for pattern, repl in _RENAMES:
        m = re.match(pattern, key)
        if not m:
            continue
        rest = key[m.end() :]
        if repl is not None:
            return m.expand(repl) + rest
        n = int(m.group(1))
        if "layer" in pattern:
            return f"neck.convs.{n - 1}.{rest}"
        # The original fuses deepest first (refinenet4) and transformers shallowest last.
        rest = rest.replace("out_conv.", "projection.")
        rest = re.sub(r"resConfUnit(\d)\.conv(\d)", r"residual_layer\1.convolution\2", rest)
        return f"neck.fusion_stage.layers.{4 - n}.{rest}"
    return key  # left for the strict load to report


def to_transformers(state: dict) -> dict:
    """The original repository's Depth Anything (v1/v2) keys as transformers 5 names them
    (its DINOv2 attention as q/k/v/o_proj); each block's fused qkv split in three."""
    out = {}
    for key, value in state.items():
        if m := _QKV.match(key):
            block, kind = m.groups()
            prefix = f"backbone.encoder.layer.{block}.attention"
            for name, part in zip(("q", "k", "v"), value.chunk(3, 0), strict=True):
                out[f"{prefix}.{name}_proj.{kind}"] = part.contiguous()
        else:
            out[_rename(key)] = value
    return out


def config_of(state: dict):
    """The transformers config an original-layout state dict describes."""
    from transformers import DepthAnythingConfig, Dinov2Config

    try:
        width = state["pretrained.cls_token"].shape[-1]
        layers = 1 + max(int(m.group(1)) for k in state if (m := _QKV.match(k)))
        patch = state["pretrained.patch_embed.proj.weight"].shape[-1]
        tokens = state["pretrained.pos_embed"].shape[1] - 1
        mlp = state["pretrained.blocks.0.mlp.fc1.weight"].shape[0]
        neck = [state[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4)]
        fusion = state["depth_head.scratch.layer1_rn.weight"].shape[0]
        head = state["depth_head.scratch.output_conv2.0.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"not a Depth Anything checkpoint (no {exc})"
        ) from exc
    # Released sizes use their own layers; a smaller net (a test's) the evenly spread four.
    out_indices = OUT_INDICES.get(width) or [round(layers * (i + 1) / 4) for i in range(4)]
    backbone = Dinov2Config(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),  # DINOv2's 64-wide heads
        mlp_ratio=mlp // width,
        patch_size=patch,
        image_size=math.isqrt(tokens) * patch,
        out_indices=out_indices,
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=width,
        patch_size=patch,
        neck_hidden_sizes=neck,
        fusion_hidden_size=fusion,
        head_hidden_size=head,
        depth_estimation_type="relative",
    )


def load_model(path: Path):
    """DepthAnythingForDepthEstimation from a transformers folder or an original file."""
    from transformers import DepthAnythingForDepthEstimation

    if path.is_dir():
        return DepthAnythingForDepthEstimation.from_pretrained(str(path), local_files_only=True)
    from dreamwire.backend.upscalers.loading import read_state

    state = read_state(path)
    model = DepthAnythingForDepthEstimation(config_of(state))
    try:
        model.load_state_dict(to_transformers(state), strict=True)
    except RuntimeError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{path.name}: the weights do not fit Depth Anything: {str(exc).splitlines()[0]}",
        ) from exc
    return model


def processor():
    """Depth Anything's own preprocessing (its checkpoints' preprocessor_config.json)."""
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    return DPTImageProcessorPil(
        do_resize=True,
        size={"height": INPUT_SIDE, "width": INPUT_SIDE},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,  # bicubic
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )


_cache: BoundedCache = BoundedCache(1)


def _model(path: Path):
    stat = path.stat()
    return _cache.get(
        (str(path), stat.st_mtime_ns), lambda: load_model(path).eval().requires_grad_(False)
    )[0]


def find(roots=()) -> Path:
    path = annotator_files.find(CANDIDATES, roots)
    if path is None:
        raise annotator_files.missing("the Depth Anything v2 preprocessor", CANDIDATES, roots)
    return path


def to_uint8(depth: np.ndarray) -> np.ndarray:
    """Relative depth stretched min..max to 0..255, three channels (the annotators' map)."""
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / max(hi - lo, 1e-12) * 255.0
    return np.repeat(scaled.astype(np.uint8)[:, :, None], 3, axis=2)


def predicted_depth(model, rgb: np.ndarray) -> np.ndarray:
    """H x W float relative depth for an RGB uint8 image."""
    import torch
    from PIL import Image

    proc = processor()
    inputs = proc(images=Image.fromarray(rgb), return_tensors="pt")
    param = next(model.parameters())
    with torch.inference_mode():
        out = model(pixel_values=inputs["pixel_values"].to(param.device, param.dtype))
    post = proc.post_process_depth_estimation(out, target_sizes=[rgb.shape[:2]])
    return post[0]["predicted_depth"].float().cpu().numpy()


def depth_map(rgb: np.ndarray, roots=()) -> np.ndarray:
    """The control image for an RGB uint8 image, with the first weights found."""
    return to_uint8(predicted_depth(_model(find(roots)), rgb))
