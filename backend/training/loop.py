"""The LoRA training loop for SD1.x, as diffusers' examples/text_to_image/
train_text_to_image_lora.py runs it: peft LoRA layers on the UNet's attention projections
(to_q, to_k, to_v, to_out.0), everything else frozen, AdamW at a constant learning rate, and
the MSE between the UNet's prediction and the noise (or velocity for v-prediction models) at
a random timestep of the model's own training schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from .dataset import Dataset, TrainingImage, load_pixels
from .options import LoraTrainOptions
from .plain_unet import unfused_eager
from .state import RunIdentity, TrainState, save_state

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
    with unfused_eager(unet):
        # peft initialises lora_A from torch's global generator: seed it, without
        # disturbing anyone else's draws.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            unet.add_adapter(config, adapter_name=ADAPTER)
        try:
            named = [(n, p) for n, p in unet.named_parameters() if p.requires_grad]
            params = [p for _, p in named]
            for p in params:
                p.data = p.data.float()  # trained in float32 whatever the model's dtype
            optimizer = torch.optim.AdamW(params, lr=options.learning_rate)
            position = _Position(0, gen.get_state(), [])
            if resume is not None:
                position = _restore(resume, named, optimizer, gen)
            run = _Run(unet, sched, examples, dataset.epoch(), options, scaling, on_step)
            losses = run.steps(position, gen, optimizer, params, checkpointing)
            state = _lora_state(unet)
        finally:
            unet.unload_lora()
            for name, p in unet.named_parameters():
                p.requires_grad_(grad_flags.get(name, False))
    return TrainResult(state, losses)


@dataclass
class _Position:
    """How far the run is: `done` steps, and the generator and order as they were right
    after the last of them (a step that fails halfway has drawn but not stepped)."""

    done: int
    rng: torch.Tensor
    order: list[int]


def _lora_state(unet) -> dict[str, torch.Tensor]:
    state = get_peft_model_state_dict(unet, adapter_name=ADAPTER)
    return {k: v.detach().float().cpu().clone() for k, v in state.items()}


def _restore(resume: TrainState, named, optimizer, gen) -> _Position:
    with torch.no_grad():
        for name, p in named:
            p.copy_(resume.lora[name.replace(f".{ADAPTER}.", ".")])
    saved = optimizer.state_dict()
    saved["state"] = {i: dict(slots) for i, slots in enumerate(resume.optimizer)}
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
    sched: DDPMScheduler
    examples: dict[TrainingImage, _Example]
    epoch: list[TrainingImage]
    options: LoraTrainOptions
    scaling: float
    on_step: Callable[[StepReport], None] | None

    def steps(self, position, gen, optimizer, params, checkpointing) -> list[float]:
        unet, sched, options = self.unet, self.sched, self.options
        self.unet.train()
        losses: list[float] = []
        order = list(position.order)
        device, dtype = unet.device, unet.dtype
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
                pred = unet(noisy.to(device, dtype), t, ex.text.to(device, dtype)).sample
                loss = F.mse_loss(pred.float(), _target(sched, latents, noise, t).float())
                loss.backward()
                if options.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                position = _Position(step, gen.get_state(), list(order))
                losses.append(float(loss.detach()))
                if _scheduled(checkpointing, step, options.max_train_steps):
                    self._save(checkpointing, position, optimizer)
                if self.on_step is not None:
                    self.on_step(StepReport(step, options.max_train_steps, losses[-1]))
        except BaseException:
            # Stopped (a cancel raised from on_step, an error, Ctrl-C): keep what is done.
            if checkpointing is not None and position.done > first:
                self._save(checkpointing, position, optimizer)
            raise
        finally:
            unet.eval()
        return losses

    def _save(self, checkpointing: Checkpointing, position: _Position, optimizer) -> None:
        moments = optimizer.state_dict()["state"]
        save_state(
            checkpointing.path,
            TrainState(
                step=position.done,
                lora=_lora_state(self.unet),
                optimizer=[dict(moments[i]) for i in range(len(moments))],
                rng=position.rng,
                order=position.order,
                identity=checkpointing.identity,
                job_id=checkpointing.job_id,
            ),
        )
