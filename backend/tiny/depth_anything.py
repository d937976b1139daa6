"""A tiny random Depth Anything v2 in the layouts artists have it: a transformers folder
(config.json + model.safetensors, as depth-anything/Depth-Anything-V2-Small-hf) and the
original repository's state dict (`pretrained.*` / `depth_head.*`, as A1111's
depth_anything_v2_vitl.safetensors and ComfyUI's depth_anything_v2_vitl.pth)."""

from __future__ import annotations

import re

import torch

from dreamwire.backend.tiny.build import SEED

WIDTH, LAYERS = 32, 4


def model():
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(SEED + 600)
    backbone = Dinov2Config(
        hidden_size=WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=1,
        mlp_ratio=2,
        patch_size=14,
        image_size=28,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=WIDTH,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    net = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for p in net.parameters():  # init leaves some at 0 / 1: make every weight matter
            p.add_(torch.randn_like(p) * 0.2)
        # The relative head ends in a ReLU: lift its last conv so the map is not all 0.
        net.head.conv3.bias.fill_(1.0)
        net.head.conv3.weight.mul_(50.0)
    return net


# transformers' names back to the original repository's, written out independently of the
# loader's renaming so that the two check each other.
_BACK = (
    (r"backbone\.embeddings\.cls_token$", "pretrained.cls_token"),
    (r"backbone\.embeddings\.mask_token$", "pretrained.mask_token"),
    (r"backbone\.embeddings\.position_embeddings$", "pretrained.pos_embed"),
    (r"backbone\.embeddings\.patch_embeddings\.projection\.", "pretrained.patch_embed.proj."),
    (
        r"backbone\.encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1$",
        r"pretrained.blocks.\1.ls\2.gamma",
    ),
    (r"backbone\.encoder\.layer\.(\d+)\.attention\.o_proj\.", r"pretrained.blocks.\1.attn.proj."),
    (r"backbone\.encoder\.layer\.(\d+)\.", r"pretrained.blocks.\1."),
    (r"backbone\.layernorm\.", "pretrained.norm."),
    (r"neck\.reassemble_stage\.layers\.(\d)\.projection\.", r"depth_head.projects.\1."),
    (r"neck\.reassemble_stage\.layers\.(\d)\.resize\.", r"depth_head.resize_layers.\1."),
    (r"head\.conv1\.", "depth_head.scratch.output_conv1."),
    (r"head\.conv2\.", "depth_head.scratch.output_conv2.0."),
    (r"head\.conv3\.", "depth_head.scratch.output_conv2.2."),
)


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := re.match(r"backbone\.encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(\w+)$", key):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        if m := re.match(r"neck\.convs\.(\d)\.", key):
            out[f"depth_head.scratch.layer{int(m.group(1)) + 1}_rn.{key[m.end() :]}"] = value
            continue
        if m := re.match(r"neck\.fusion_stage\.layers\.(\d)\.", key):
            rest = key[m.end() :].replace("projection.", "out_conv.")
            rest = re.sub(r"residual_layer(\d)\.convolution(\d)", r"resConfUnit\1.conv\2", rest)
            out[f"depth_head.scratch.refinenet{4 - int(m.group(1))}.{rest}"] = value
            continue
        for pattern, repl in _BACK:
            if m := re.match(pattern, key):
                key = m.expand(repl) + key[m.end() :]
                break
        out[key] = value
    for (block, kind), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
        out[f"pretrained.blocks.{block}.attn.qkv.{kind}"] = fused
    return {k: v.detach().contiguous() for k, v in out.items()}
