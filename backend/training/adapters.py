"""The LoRA layers a run trains, put on the loaded model's modules and taken off again.

peft layers on the UNet's attention projections (to_q, to_k, to_v, to_out.0, as diffusers'
LoRA scripts) and, unless the run trains the UNet only, on each text encoder's attention and
MLP projections (q/k/v/out_proj, fc1, fc2: kohya's CLIPAttention and CLIPMLP targets). The
trained parameters are named `<component>.<module>.lora_A.weight` / `lora_B.weight`, the
names the run's state and kohya_file.py use. Taking them off leaves every module as it came:
the same module tree, the same weights, the same requires_grad flags."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from .options import LoraTrainOptions
from .plain_unet import unfused_eager
from .text import TextStage

ADAPTER = "dreamwire_training"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _config(options: LoraTrainOptions, targets: list[str]) -> LoraConfig:
    return LoraConfig(
        r=options.network_dim,
        lora_alpha=options.network_alpha,
        init_lora_weights="gaussian",
        target_modules=targets,
    )


def lora_parameters(component: str, module: nn.Module) -> dict[str, nn.Parameter]:
    tag = f".{ADAPTER}"
    return {
        f"{component}.{name.replace(tag, '')}": p
        for name, p in module.named_parameters()
        if tag in name
    }


def _strip_text_encoder(te: nn.Module) -> None:
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    recurse_remove_peft_layers(te)
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in vars(te):
            delattr(te, attr)


@contextlib.contextmanager
def attached(components: dict[str, Any], options: LoraTrainOptions) -> Iterator[dict]:
    """Yields the trained parameters by name (UNet first, then the text encoders), in
    float32 whatever the model's dtype; on exit the layers are gone."""
    unet = components["unet"]
    text = TextStage.of(components)
    trained = (
        [] if options.network_train_unet_only else list(zip(text.names, text.encoders, strict=True))
    )
    modules = [unet, *(te for _, te in trained)]
    flags = [{n: p.requires_grad for n, p in m.named_parameters()} for m in modules]
    for m in modules:
        m.requires_grad_(False)
    with unfused_eager(unet):
        try:
            # peft initialises lora_A from torch's global generator: seed it, without
            # disturbing anyone else's draws.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(options.seed)
                unet.add_adapter(_config(options, UNET_TARGETS), adapter_name=ADAPTER)
                for _, te in trained:
                    inject_adapter_in_model(_config(options, TEXT_TARGETS), te, ADAPTER)
            named = lora_parameters("unet", unet)
            for name, te in trained:
                named |= lora_parameters(name, te)
            for p in named.values():
                p.requires_grad_(True)
                p.data = p.data.float()  # trained in float32 whatever the model's dtype
            yield named
        finally:
            unet.unload_lora()
            for _, te in trained:
                _strip_text_encoder(te)
            for m, was in zip(modules, flags, strict=True):
                for name, p in m.named_parameters():
                    p.requires_grad_(was.get(name, False))


def lora_state(named: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().clone() for k, v in named.items()}
