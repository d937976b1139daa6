"""The LoRA training loop for SD1.x, as diffusers' examples/text_to_image/
train_text_to_image_lora.py runs it: peft LoRA layers on the UNet's attention projections
(to_q, to_k, to_v, to_out.0), everything else frozen, AdamW at a constant learning rate, and
the MSE between the UNet's prediction and the noise (or velocity for v-prediction models) at
a random timestep of the model's own training schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from .dataset import Dataset, TrainingImage, load_pixels
from .options import LoraTrainOptions

ADAPTER = "dreamwire_training"
TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass(frozen=True)
class StepReport:
    step: int  # 1-based
    total: int
    loss: float


@dataclass
class TrainResult:
    lora_state: dict[str, torch.Tensor]  # peft names (…to_q.lora_A.weight), on the CPU
    losses: list[float]


@dataclass
class _Example:
    """One image's VAE posterior (mean, std) and its caption's embedding, computed once:
    the frozen VAE and text encoder give the same every step, and sampling the posterior
    each step is what diffusers' `latent_dist.sample()` does."""

    mean: torch.Tensor
    std: torch.Tensor
    text: torch.Tensor


def _prepare(
    images: list[TrainingImage], components: dict[str, Any], resolution: int
) -> dict[TrainingImage, _Example]:
    vae, te, tok = components["vae"], components["text_encoder"], components["tokenizer"]
    out = {}
    with torch.no_grad():
        for img in images:
            pixels = load_pixels(img.path, resolution).to(vae.device, vae.dtype)
            dist = vae.encode(pixels).latent_dist
            ids = tok(
                img.caption,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(te.device)
            out[img] = _Example(dist.mean, dist.std, te(ids)[0])
    return out


def _target(sched: DDPMScheduler, latents, noise, timesteps) -> torch.Tensor:
    kind = sched.config.prediction_type
    if kind == "v_prediction":
        return sched.get_velocity(latents, noise, timesteps)
    return noise


def train_lora(
    components: dict[str, Any],
    dataset: Dataset,
    options: LoraTrainOptions,
    on_step: Callable[[StepReport], None] | None = None,
) -> TrainResult:
    """Train a LoRA on `components` (unet, vae, text_encoder, tokenizer, scheduler of a loaded
    SD1.x model). The UNet is handed back as it came: the LoRA layers are removed and its
    weights untouched, so the engine's cached model keeps working."""
    unet, vae = components["unet"], components["vae"]
    sched = DDPMScheduler.from_config(components["scheduler"].config)
    gen = torch.Generator("cpu").manual_seed(options.seed)
    examples = _prepare(dataset.images, components, options.resolution)
    scaling = vae.config.scaling_factor
    grad_flags = {name: p.requires_grad for name, p in unet.named_parameters()}
    unet.requires_grad_(False)
    config = LoraConfig(
        r=options.network_dim,
        lora_alpha=options.network_alpha,
        init_lora_weights="gaussian",
        target_modules=TARGET_MODULES,
    )
    # peft initialises lora_A from torch's global generator: seed it, without disturbing
    # anyone else's draws.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        unet.add_adapter(config, adapter_name=ADAPTER)
    try:
        params = [p for p in unet.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()  # trained in float32 whatever the model's dtype
        optimizer = torch.optim.AdamW(params, lr=options.learning_rate)
        losses = _run(
            unet, sched, examples, dataset, options, gen, scaling, optimizer, params, on_step
        )
        state = get_peft_model_state_dict(unet, adapter_name=ADAPTER)
        state = {k: v.detach().float().cpu().clone() for k, v in state.items()}
    finally:
        unet.unload_lora()
        for name, p in unet.named_parameters():
            p.requires_grad_(grad_flags.get(name, False))
    return TrainResult(state, losses)


def _run(
    unet, sched, examples, dataset, options, gen, scaling, optimizer, params, on_step
) -> list[float]:
    unet.train()
    losses: list[float] = []
    order: list[TrainingImage] = []
    device, dtype = unet.device, unet.dtype
    try:
        for step in range(1, options.max_train_steps + 1):
            if not order:
                epoch = dataset.epoch()
                order = [epoch[i] for i in torch.randperm(len(epoch), generator=gen)]
            ex = examples[order.pop()]
            eps = torch.randn(ex.mean.shape, generator=gen).to(ex.mean.device, ex.mean.dtype)
            latents = (ex.mean + ex.std * eps) * scaling
            noise = torch.randn(latents.shape, generator=gen).to(latents.device, latents.dtype)
            t = torch.randint(0, sched.config.num_train_timesteps, (1,), generator=gen)
            t = t.to(latents.device)
            noisy = sched.add_noise(latents, noise, t)
            pred = unet(noisy.to(device, dtype), t, ex.text.to(device, dtype)).sample
            loss = F.mse_loss(pred.float(), _target(sched, latents, noise, t).float())
            loss.backward()
            if options.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(StepReport(step, options.max_train_steps, losses[-1]))
    finally:
        unet.eval()
    return losses
