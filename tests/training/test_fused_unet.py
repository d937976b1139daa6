"""Training on a UNet the GPU fast path has fused (q/k/v in one projection): the LoRA layers
on to_q/to_k/to_v still learn, and the fused attention is given back afterwards. The
fusion itself is device-agnostic module surgery, so the CPU shows it."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import FusedAttnProcessor2_0

from dreamwire.backend.engine.fastpath import fuse_qkv
from dreamwire.backend.training.dataset import read_dataset
from dreamwire.backend.training.loop import train_lora
from dreamwire.backend.training.options import LoraTrainOptions


def _fused(unet) -> int:
    return sum(
        isinstance(getattr(m, "processor", None), FusedAttnProcessor2_0) for m in unet.modules()
    )


def test_a_fused_unet_trains_every_projection_and_stays_fused(train_engine, two_images):
    components = train_engine.load("tiny-sd1").components
    unet = components["unet"]
    fused = fuse_qkv(unet)
    assert fused > 0 and _fused(unet) == fused
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    options = LoraTrainOptions(
        network_dim=2, learning_rate=1e-2, max_train_steps=2, resolution=32, seed=1
    )
    result = train_lora(components, read_dataset(two_images), options)
    ups = {k: v for k, v in result.lora_state.items() if ".lora_B." in k}
    for proj in ("to_q", "to_k", "to_v", "to_out.0"):
        mine = [v for k, v in ups.items() if f".{proj}.lora_B." in k]
        assert mine and all(v.abs().max() > 0 for v in mine), proj  # each one learned
    assert _fused(unet) == fused
    after = unet.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
