"""Diffusers -> original (CompVis/LDM, A1111) state-dict key layout.

Real SD1.x/SDXL single-file checkpoints store the UNet under `model.diffusion_model.`, the
VAE under `first_stage_model.` and the text encoders under `cond_stage_model.` or
`conditioner.embedders.N.`, with the LDM repository's module names. The tiny models are
written in that layout so that the library's single-file path is exercised exactly as with
an artist's checkpoint. This is the inverse of diffusers' single-file conversion; every
diffusers key must map, so an unmapped key is an error rather than silently dropped.
"""

from __future__ import annotations

import re

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet(rest: str, table: dict[str, str]) -> str:
    module, _, param = rest.partition(".")
    if module not in table:
        raise KeyError(module)
    return f"{table[module]}.{param}"


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    per = int(config["layers_per_block"])
    up_has_attention = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        out[UNET_PREFIX + _unet_key(key, per, up_has_attention)] = value
    return out


def _unet_key(key: str, per: int, up_has_attention: list[bool]) -> str:
    module, _, param = key.rpartition(".")
    if module in _UNET_TOP:
        return f"{_UNET_TOP[module]}.{param}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * (per + 1) + layer
        if kind == "resnets":
            return f"input_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
        return f"input_blocks.{index}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * (per + 1) + per}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
        kind, layer, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * layer}.{_resnet(rest, _UNET_RESNET)}"
        return f"middle_block.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * (per + 1) + layer
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
        return f"output_blocks.{index}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if up_has_attention[block] else 1
        return f"output_blocks.{block * (per + 1) + per}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


_VAE_RESNET = {n: n for n in ("norm1", "conv1", "norm2", "conv2")} | {
    "conv_shortcut": "nin_shortcut"
}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def vae_to_ldm(
    state: dict[str, torch.Tensor], config: dict, prefix: str = VAE_PREFIX
) -> dict[str, torch.Tensor]:
    """With prefix="" this is the layout of an A1111 VAE file (`encoder.conv_in.weight`)."""
    blocks = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new, conv = _vae_key(key, blocks)
        # LDM's mid-block attention uses 1x1 convolutions where diffusers uses linears.
        if conv and value.ndim == 2:
            value = value[:, :, None, None]
        out[prefix + new] = value.contiguous()
    return out


def _vae_key(key: str, blocks: int) -> tuple[str, bool]:
    simple = {"conv_in", "conv_out", "quant_conv", "post_quant_conv"}
    module, _, param = key.rpartition(".")
    part, _, inner = module.partition(".")
    if module in simple or (part in ("encoder", "decoder") and inner in ("conv_in", "conv_out")):
        return key, False
    if part in ("encoder", "decoder") and inner == "conv_norm_out":
        return f"{part}.norm_out.{param}", False
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_resnet(m[3], _VAE_RESNET)}", False
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}", False
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        ldm_block = blocks - 1 - int(m[1])
        return f"decoder.up.{ldm_block}.block.{m[2]}.{_resnet(m[3], _VAE_RESNET)}", False
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}", False
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_resnet(m[3], _VAE_RESNET)}", False
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        if m[2] not in _VAE_ATTENTION:
            raise KeyError(f"no LDM name for VAE key {key!r}")
        return f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}", m[2] != "group_norm"
    raise KeyError(f"no LDM name for VAE key {key!r}")


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP text encoders keep transformers' names under a prefix such as
    `cond_stage_model.transformer.` (SD1.x) or `conditioner.embedders.0.transformer.` (SDXL)."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        out[f"{prefix}text_model.{key.removeprefix('text_model.')}"] = value
    return out


_OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenCLIP (SDXL's bigG, SD2's ViT-H) names: fused q/k/v `in_proj`, `resblocks`, and a
    `text_projection` matrix stored transposed relative to transformers' Linear weight."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.rpartition(".")[2]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif m := re.fullmatch(
            r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key
        ):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            if m[2] not in _OPENCLIP_LAYER:
                raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
            out[f"{prefix}transformer.resblocks.{m[1]}.{_OPENCLIP_LAYER[m[2]]}.{m[3]}"] = value
        else:
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
    for (layer, param), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0).contiguous()
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = fused
    return out
