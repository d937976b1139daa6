"""The LoRA training loop for SD1.x and SDXL, as diffusers' examples/text_to_image/
train_text_to_image_lora[_sdxl].py run it: peft LoRA layers (adapters.py) on the UNet's
attention projections and, unless `network_train_unet_only`, the text encoders' (kohya's
default), everything else frozen, AdamW at a constant learning rate, and the MSE between the
UNet's prediction and the noise (or velocity for v-prediction models) at a random timestep
of the model's own training schedule. SDXL's UNet also takes the pooled text embedding and
the picture's size conditioning (size_conditioning.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from .adapters import attached, lora_state
from .dataset import Dataset, TrainingImage, image_size, load_pixels
from .options import LoraTrainOptions
from .size_conditioning import time_ids
from .state import RunIdentity, TrainState, save_state
from .text import Encoded, TextStage


@dataclass(frozen=True)
class StepReport:
    step: int  # 1-based
    total: int
    loss: float


@dataclass
class TrainResult:
    # `<component>.<peft name>` (unet.…to_q.lora_A.weight), on the CPU
    lora_state: dict[str, torch.Tensor]
    losses: list[float]


@dataclass
class _Example:
    """One image's VAE posterior (mean, std), its caption's tokens and SDXL's size
    conditioning, computed once: the frozen VAE gives the same every step, and sampling the
    posterior each step is what diffusers' `latent_dist.sample()` does. The caption's
    embedding is kept too while the text encoders are frozen."""

    mean: torch.Tensor
    std: torch.Tensor
    tokens: list[torch.Tensor]
    text: Encoded | None  # None: encoded each step (the text encoders train)
    time_ids: torch.Tensor | None  # SDXL only


def _prepare(
    images: list[TrainingImage], components: dict[str, Any], options: LoraTrainOptions
) -> dict[TrainingImage, _Example]:
    vae, text = components["vae"], TextStage.of(components)
    sdxl = components["unet"].config.addition_embed_type == "text_time"
    resolution = options.resolution
    out = {}
    with torch.no_grad():
        for img in images:
            pixels = load_pixels(img.path, resolution).to(vae.device, vae.dtype)
            dist = vae.encode(pixels).latent_dist
            tokens = text.tokens(img.caption)
            cached = text.encode(tokens) if options.network_train_unet_only else None
            sizes = time_ids(image_size(img.path), (resolution, resolution)) if sdxl else None
            out[img] = _Example(dist.mean, dist.std, tokens, cached, sizes)
    return out


def _target(sched: DDPMScheduler, latents, noise, timesteps) -> torch.Tensor:
    kind = sched.config.prediction_type
    if kind == "v_prediction":
        return sched.get_velocity(latents, noise, timesteps)
    return noise


@dataclass(frozen=True)
class Checkpointing:
    """Where the run's state goes (state.py), how often, and what it is a state of. The
    state is saved every `every` steps (0: never on a schedule) and whenever the run stops
    before its last step (a cancel, an error), so a stop loses no finished step."""

    path: Path
    identity: RunIdentity
    every: int = 0
    job_id: str = ""


def train_lora(
    components: dict[str, Any],
    dataset: Dataset,
    options: LoraTrainOptions,
    on_step: Callable[[StepReport], None] | None = None,
    resume: TrainState | None = None,
    checkpointing: Checkpointing | None = None,
) -> TrainResult:
    """Train a LoRA on `components` (unet, vae, text_encoder, tokenizer, scheduler of a loaded
    SD1.x model). The UNet is handed back as it came: the LoRA layers are removed and its
    weights untouched, so the engine's cached model keeps working. From `resume` the run
    goes on at its step with its weights, moments, draws and order: the same weights as a
    run that never stopped."""
    unet, vae = components["unet"], components["vae"]
    sched = DDPMScheduler.from_config(components["scheduler"].config)
    gen = torch.Generator("cpu").manual_seed(options.seed)
    examples = _prepare(dataset.images, components, options)
    scaling = vae.config.scaling_factor
    with attached(components, options) as named:
        params = list(named.values())
        optimizer = torch.optim.AdamW(params, lr=options.learning_rate)
        position = _Position(0, gen.get_state(), [])
        if resume is not None:
            position = _restore(resume, named, optimizer, gen)
        text = TextStage.of(components)
        run = _Run(unet, text, sched, examples, dataset.epoch(), options, scaling, on_step)
        losses = run.steps(position, gen, optimizer, named, checkpointing)
        state = lora_state(named)
    return TrainResult(state, losses)


@dataclass
class _Position:
    """How far the run is: `done` steps, and the generator and order as they were right
    after the last of them (a step that fails halfway has drawn but not stepped)."""

    done: int
    rng: torch.Tensor
    order: list[int]


def _restore(resume: TrainState, named, optimizer, gen) -> _Position:
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(resume.lora[name])
    saved = optimizer.state_dict()
    saved["state"] = {i: dict(slots) for i, slots in enumerate(resume.optimizer) if slots}
    optimizer.load_state_dict(saved)
    gen.set_state(resume.rng)
    return _Position(resume.step, resume.rng, list(resume.order))


def _scheduled(checkpointing: Checkpointing | None, step: int, last: int) -> bool:
    """A scheduled save; none after the last step, whose LoRA file is what is kept."""
    if checkpointing is None or not checkpointing.every:
        return False
    return step % checkpointing.every == 0 and step < last


@dataclass
class _Run:
    unet: Any
    text: TextStage
    sched: DDPMScheduler
    examples: dict[TrainingImage, _Example]
    epoch: list[TrainingImage]
    options: LoraTrainOptions
    scaling: float
    on_step: Callable[[StepReport], None] | None

    def _predict(self, ex: _Example, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        device, dtype = unet.device, unet.dtype
        # The text encoders' LoRA learns through this when they train.
        text = ex.text if ex.text is not None else self.text.encode(ex.tokens)
        added = None
        if ex.time_ids is not None:
            added = {
                "text_embeds": text.pooled.to(device, dtype),
                "time_ids": ex.time_ids.to(device, dtype),
            }
        hidden = text.hidden.to(device, dtype)
        return unet(noisy.to(device, dtype), t, hidden, added_cond_kwargs=added).sample

    def steps(self, position, gen, optimizer, named, checkpointing) -> list[float]:
        unet, sched, options = self.unet, self.sched, self.options
        params = list(named.values())
        self.unet.train()
        losses: list[float] = []
        order = list(position.order)
        first = position.done
        try:
            for step in range(first + 1, options.max_train_steps + 1):
                if not order:
                    order = torch.randperm(len(self.epoch), generator=gen).tolist()
                ex = self.examples[self.epoch[order.pop()]]
                eps = torch.randn(ex.mean.shape, generator=gen).to(ex.mean.device, ex.mean.dtype)
                latents = (ex.mean + ex.std * eps) * self.scaling
                noise = torch.randn(latents.shape, generator=gen)
                noise = noise.to(latents.device, latents.dtype)
                t = torch.randint(0, sched.config.num_train_timesteps, (1,), generator=gen)
                t = t.to(latents.device)
                noisy = sched.add_noise(latents, noise, t)
                pred = self._predict(ex, noisy, t)
                loss = F.mse_loss(pred.float(), _target(sched, latents, noise, t).float())
                loss.backward()
                if options.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                position = _Position(step, gen.get_state(), list(order))
                losses.append(float(loss.detach()))
                if _scheduled(checkpointing, step, options.max_train_steps):
                    self._save(checkpointing, position, optimizer, named)
                if self.on_step is not None:
                    self.on_step(StepReport(step, options.max_train_steps, losses[-1]))
        except BaseException:
            # Stopped (a cancel raised from on_step, an error, Ctrl-C): keep what is done.
            if checkpointing is not None and position.done > first:
                self._save(checkpointing, position, optimizer, named)
            raise
        finally:
            unet.eval()
        return losses

    def _save(self, checkpointing: Checkpointing, position: _Position, optimizer, named) -> None:
        moments = optimizer.state_dict()["state"]
        save_state(
            checkpointing.path,
            TrainState(
                step=position.done,
                lora=lora_state(named),
                # A parameter that never had a gradient has no moments (SDXL's first text
                # encoder's last layer: its penultimate states are what the UNet reads).
                optimizer=[dict(moments.get(i, {})) for i in range(len(named))],
                rng=position.rng,
                order=position.order,
                identity=checkpointing.identity,
                job_id=checkpointing.job_id,
            ),
        )
