"""The trained LoRA as kohya's sd-scripts writes it: `lora_unet_<module>` and text encoder
keys with `.lora_down.weight`, `.lora_up.weight` and `.alpha`, and `ss_*` metadata, so
A1111, Forge, ComfyUI, diffusers and Dreamwire's own loader all read it.

SD1.x (train_network.py): UNet modules named the diffusers way (`down_blocks_0_...`), the
text encoder's under `lora_te_`. SDXL (sdxl_train_network.py, whose UNet is the original
one): UNet modules in the original layout (`input_blocks_4_1_...`), the two text encoders'
under `lora_te1_` and `lora_te2_`. Text encoder modules keep CLIP's `text_model_` level,
which transformers 5 no longer has in its module names."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamwire.backend.conditioning.ldm_names import diffusers_to_ldm_module

from .dataset import Dataset
from .options import LoraTrainOptions

_PEFT_KEY = re.compile(r"^(.+)\.lora_([AB])\.weight$")
_SLOT = {"A": "lora_down.weight", "B": "lora_up.weight"}


@dataclass(frozen=True)
class KohyaFlavour:
    """How kohya names one family's LoRA and which base model it says it is for."""

    base_model_version: str  # ss_base_model_version
    text_prefixes: dict[str, str]  # component -> key prefix
    unet_config: dict | None = None  # set: UNet modules in the original layout

    def module(self, component: str, name: str) -> str:
        if component == "unet":
            if self.unet_config is not None:
                name = diffusers_to_ldm_module(name, self.unet_config)
            return "lora_unet_" + name.replace(".", "_")
        if not name.startswith("text_model."):
            name = "text_model." + name
        return self.text_prefixes[component] + name.replace(".", "_")


def flavour(family: str, unet_config: dict) -> KohyaFlavour:
    if family == "sdxl":
        return KohyaFlavour(
            "sdxl_base_v1-0",
            {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"},
            dict(unet_config),
        )
    return KohyaFlavour("sd_v1", {"text_encoder": "lora_te_"})


def kohya_tensors(
    state: dict[str, torch.Tensor], alpha: float, names: KohyaFlavour
) -> dict[str, torch.Tensor]:
    """`unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight` as
    kohya's `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q
    .lora_down.weight` (SD1.x), with one `.alpha` per module."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        component, _, peft_name = key.partition(".")
        m = _PEFT_KEY.match(peft_name)
        if m is None:
            raise ValueError(f"unexpected LoRA parameter {key}")
        module = names.module(component, m.group(1))
        out[f"{module}.{_SLOT[m.group(2)]}"] = value.contiguous()
        out[f"{module}.alpha"] = torch.tensor(float(alpha))
    return out


@dataclass(frozen=True)
class TrainingRecord:
    """What the `ss_*` metadata records beyond the options."""

    output_name: str
    base_model: str  # the checkpoint's library name
    base_model_hash: str
    started_at: float  # unix time
    finished_at: float
    steps_done: int


def _tag_frequency(dataset: Dataset) -> dict[str, dict[str, int]]:
    per_folder: dict[str, Counter] = {}
    root = dataset.root
    for img in dataset.images:
        folder = img.path.parent.name if img.path.parent != root else root.name
        tags = [t.strip() for t in img.caption.split(",") if t.strip()]
        per_folder.setdefault(folder, Counter()).update(tags)
    return {k: dict(v) for k, v in per_folder.items()}


def kohya_metadata(
    options: LoraTrainOptions, dataset: Dataset, record: TrainingRecord, names: KohyaFlavour
) -> dict[str, str]:
    """kohya sd-scripts' `ss_*` fields (train_network.py, sdxl_train_network.py)."""
    epoch_len = len(dataset.epoch())
    unet_only = options.network_train_unet_only
    meta = {
        "ss_session_id": str(options.seed),
        "ss_training_started_at": str(record.started_at),
        "ss_training_finished_at": str(record.finished_at),
        "ss_output_name": record.output_name,
        "ss_sd_model_name": record.base_model,
        "ss_new_sd_model_hash": record.base_model_hash,
        "ss_base_model_version": names.base_model_version,
        "ss_v2": "False",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(options.network_dim),
        "ss_network_alpha": str(float(options.network_alpha)),
        "ss_network_train_unet_only": str(options.network_train_unet_only),
        "ss_learning_rate": str(options.learning_rate),
        "ss_unet_lr": str(options.learning_rate),
        "ss_text_encoder_lr": "None" if unet_only else str(options.learning_rate),
        "ss_lr_scheduler": "constant",
        "ss_lr_warmup_steps": "0",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_max_train_steps": str(options.max_train_steps),
        "ss_steps": str(record.steps_done),
        "ss_epoch": str(-(-record.steps_done // epoch_len)),
        "ss_num_train_images": str(epoch_len),
        "ss_num_reg_images": "0",
        "ss_num_batches_per_epoch": str(epoch_len),
        "ss_batch_size_per_device": "1",
        "ss_total_batch_size": "1",
        "ss_gradient_accumulation_steps": "1",
        "ss_resolution": f"({options.resolution}, {options.resolution})",
        "ss_enable_bucket": "False",
        "ss_seed": str(options.seed),
        "ss_max_grad_norm": str(options.max_grad_norm),
        "ss_mixed_precision": "no",
        "ss_full_fp16": "False",
        "ss_noise_offset": "None",
        "ss_min_snr_gamma": "None",
        "ss_cache_latents": "True",
        "ss_caption_dropout_rate": "0.0",
        "ss_gradient_checkpointing": "False",
        "ss_dataset_dirs": json.dumps(
            {f.name: {"n_repeats": f.repeats, "img_count": f.images} for f in dataset.folders}
        ),
        "ss_tag_frequency": json.dumps(_tag_frequency(dataset)),
        "ss_training_comment": "trained by Dreamwire",
    }
    return meta


def save_lora(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write through a temporary file and rename, so a crash never leaves half a LoRA where
    `<lora:name>` would find it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(dict(sorted(tensors.items())), str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
