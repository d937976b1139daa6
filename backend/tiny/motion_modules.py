"""Tiny random AnimateDiff motion modules, for the tiny SD1 UNet, in the layouts artists have:

    ROOT/extensions/sd-webui-animatediff/model/tiny_mm_sd1.ckpt        original keys, pickled
    ROOT/custom_nodes/ComfyUI-AnimateDiff-Evolved/models/
        tiny_mm_sd1_v2.safetensors                                     original keys
        tiny_mm_wide.safetensors                                       original keys, blocks
                                                                       too wide for tiny-sd1
    ROOT/models/animatediff_models/tiny-motion-adapter/                diffusers folder

and for the tiny SDXL UNet, shaped as AnimateDiff's SDXL module is (no mid block):

    ROOT/extensions/sd-webui-animatediff/model/tiny_mm_sdxl.ckpt       original keys, pickled
    ROOT/models/animatediff_models/tiny-motion-adapter-xl/             diffusers folder

The three tiny-sd1 files hold the same weights, so loading any of them must give the same
adapter (and the two tiny SDXL ones theirs). The original files are written from a diffusers MotionAdapter by undoing diffusers'
renames (and storing the positional table once per attention, as AnimateDiff does).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from dreamwire.backend.library.motion_modules import FOLDERS, HEADS
from dreamwire.backend.tiny.files import save_tensors, state_of, unet_config

SEED = 20240717
_TO_ORIGINAL = (
    (".norm1", ".norms.0"),
    (".norm2", ".norms.1"),
    (".norm3", ".ff_norm"),
    (".attn1", ".attention_blocks.0"),
    (".attn2", ".attention_blocks.1"),
)


def adapter(widths: tuple[int, ...], seed: int = SEED, mid_block: bool = True):
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    a = MotionAdapter(
        block_out_channels=widths,
        motion_layers_per_block=1,
        motion_num_attention_heads=HEADS,
        motion_norm_num_groups=32,
        motion_max_seq_length=32,
        use_motion_mid_block=mid_block,
    ).eval()
    # diffusers zero-initialises proj_out (a fresh module is the identity); random weights
    # make the motion module change the result, so a test can see that it ran.
    with torch.no_grad():
        for p in a.parameters():
            if not p.any():
                p.normal_(0, 0.2)
    return a


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        k = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", k)
        if k.endswith(".pos_embed.pe"):
            for i in (0, 1):
                out[k.replace(".pos_embed.pe", f".attention_blocks.{i}.pos_encoder.pe")] = v.clone()
            continue
        for new, old in _TO_ORIGINAL:
            k = k.replace(new, old)
        out[k] = v
    return out


def build(root: Path) -> dict[str, Path]:
    root = Path(root)
    a1111, comfy, shared = (root / f for f in FOLDERS[:3])
    mm = adapter(tuple(unet_config("tiny-sd1")["block_out_channels"]))
    original = to_original(state_of(mm))
    ckpt = a1111 / "tiny_mm_sd1.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": original}, ckpt)
    folder = shared / "tiny-motion-adapter"
    mm.save_pretrained(folder)
    wide = to_original(state_of(adapter((64, 128), SEED + 1)))
    xl = adapter(tuple(unet_config("tiny-sdxl")["block_out_channels"]), SEED + 2, mid_block=False)
    xl_ckpt = a1111 / "tiny_mm_sdxl.ckpt"
    torch.save(to_original(state_of(xl)), xl_ckpt)  # no Lightning wrapper, as mm_sdxl's
    xl_folder = shared / "tiny-motion-adapter-xl"
    xl.save_pretrained(xl_folder)
    return {
        "tiny_mm_sdxl": xl_ckpt,
        "tiny-motion-adapter-xl": xl_folder,
        "tiny_mm_sd1": ckpt,
        "tiny_mm_sd1_v2": save_tensors(original, comfy / "tiny_mm_sd1_v2.safetensors"),
        "tiny-motion-adapter": folder,
        "tiny_mm_wide": save_tensors(wide, comfy / "tiny_mm_wide.safetensors"),
    }
