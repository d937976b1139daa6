"""The Wan 2.1 VAE's own key names (ComfyUI's qwen_image_vae.safetensors) renamed to
diffusers' AutoencoderKLQwenImage, for any depth.

diffusers' converter (single_file_utils.convert_wan_vae_to_diffusers) hard-codes the real
model's decoder grouping (flat indices 0-2, 4-6, ... as resnets, 3/7/11 as upsamplers).
Here the grouping is read from the file: Wan's `decoder.upsamples.N` is one flat list in
which an entry with a `resample`/`time_conv` closes an up block; the encoder's flat
`downsamples.N` is diffusers' own flat `down_blocks.N`.
"""

from __future__ import annotations

_RESIDUAL = {
    "residual.0.gamma": "norm1.gamma",
    "residual.2.weight": "conv1.weight",
    "residual.2.bias": "conv1.bias",
    "residual.3.gamma": "norm2.gamma",
    "residual.6.weight": "conv2.weight",
    "residual.6.bias": "conv2.bias",
    "shortcut.weight": "conv_shortcut.weight",
    "shortcut.bias": "conv_shortcut.bias",
}
_TOP = {
    "conv1.weight": "quant_conv.weight",
    "conv1.bias": "quant_conv.bias",
    "conv2.weight": "post_quant_conv.weight",
    "conv2.bias": "post_quant_conv.bias",
}
_SIDE = {
    "conv1": "conv_in",
    "head.0": "norm_out",
    "head.2": "conv_out",
}


def is_wan_layout(keys) -> bool:
    return "encoder.conv1.weight" in keys


def _resnet(rest: str) -> str:
    return _RESIDUAL.get(rest, rest)


def _upsampler_indices(keys) -> list[tuple[int, bool]]:
    """Wan's decoder flat indices in order, each with whether it is an upsampler."""
    found: dict[int, bool] = {}
    for key in keys:
        if key.startswith("decoder.upsamples."):
            index, rest = key.removeprefix("decoder.upsamples.").split(".", 1)
            upsampler = rest.startswith(("resample.", "time_conv."))
            found[int(index)] = found.get(int(index), False) or upsampler
    return sorted(found.items())


def _decoder_names(keys) -> dict[int, str]:
    """Wan's flat decoder index -> diffusers' `decoder.up_blocks.B.resnets.R` or
    `decoder.up_blocks.B.upsamplers.0`."""
    names, block, resnet = {}, 0, 0
    for index, upsampler in _upsampler_indices(keys):
        if upsampler:
            names[index] = f"decoder.up_blocks.{block}.upsamplers.0"
            block, resnet = block + 1, 0
        else:
            names[index] = f"decoder.up_blocks.{block}.resnets.{resnet}"
            resnet += 1
    return names


def _renamed(key: str, decoder: dict[int, str]) -> str:
    if key in _TOP:
        return _TOP[key]
    side, rest = key.split(".", 1)
    if side not in ("encoder", "decoder"):
        return key
    for wan, ours in _SIDE.items():
        if rest.startswith(wan + "."):
            return f"{side}.{ours}{rest[len(wan) :]}"
    if rest.startswith("middle."):
        index, tail = rest.removeprefix("middle.").split(".", 1)
        # middle.0 / middle.2: resnets 0 and 1; middle.1: the attention.
        if index == "1":
            return f"{side}.mid_block.attentions.0.{tail}"
        return f"{side}.mid_block.resnets.{int(index) // 2}.{_resnet(tail)}"
    if rest.startswith("downsamples."):
        index, tail = rest.removeprefix("downsamples.").split(".", 1)
        return f"encoder.down_blocks.{index}.{_resnet(tail)}"
    if rest.startswith("upsamples."):
        index, tail = rest.removeprefix("upsamples.").split(".", 1)
        return f"{decoder[int(index)]}.{_resnet(tail)}"
    return key


def wan_to_diffusers(state: dict) -> dict:
    """`state` in diffusers' names (a state already in them is returned as it is)."""
    if not is_wan_layout(state):
        return state
    decoder = _decoder_names(state)
    return {_renamed(key, decoder): value for key, value in state.items()}
