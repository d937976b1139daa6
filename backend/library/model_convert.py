"""`dreamwire models convert`: the sd-webui-model-converter extension's conversions of an
A1111 single-file checkpoint, streamed to .safetensors.

- Precision: fp32 keeps the tensors, fp16/bf16 cast the floating ones. (The extension
  casts every tensor of a converted part, the CLIP position ids too, which breaks them;
  integer tensors keep their dtype here.)
- Pruning: "no-ema" drops every `model_ema*` key; "ema-only" puts each model weight's EMA
  copy (`model_ema.` + its name after `model.`, dots removed) in its place and drops the
  rest of the EMA (its `num_updates` and `decay` counters stay, as the extension keeps
  them). Training-only keys (a VAE's `loss.*` discriminator, `embedding_manager.*` left by
  textual-inversion training, `lvlb_weights`) go with any pruning.
- Parts: the UNet (`model.diffusion_model.*`), VAE (`first_stage_model.*`) and text
  encoders (`cond_stage_model.*`, SDXL's `conditioner.*`); `--only` keeps one part (the
  extension's "delete" for the others).
- A baked VAE replaces `first_stage_model.*` as the merger bakes it (merge.py).
- A pickled .ckpt/.pt/.bin goes through the restricted loader (pickles.safe_torch_load),
  which refuses, naming why, a pickle that asks for anything beyond tensors.

The name, when none is given, is the extension's: "{stem}-{precision}[-{pruning}]" plus
"-{part}" for a part alone; a plain pickle-to-safetensors conversion keeps the stem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .merge import baked_vae_keys
from .tensor_stream import TensorSource, TensorSpec, open_source, write_streaming

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
EMA_COUNTERS = frozenset({"model_ema.num_updates", "model_ema.decay"})
_TRAINING_ONLY = re.compile(r"^(first_stage_model\.loss\.|embedding_manager\.|lvlb_weights$)")


class Pruning(str, Enum):
    DISABLED = "disabled"
    NO_EMA = "no-ema"
    EMA_ONLY = "ema-only"


class Part(str, Enum):
    UNET = "unet"
    VAE = "vae"
    TEXT_ENCODER = "text-encoder"
    OTHER = "other"


def part_of(key: str) -> Part:
    if key.startswith("model.diffusion_model."):
        return Part.UNET
    if key.startswith("first_stage_model."):
        return Part.VAE
    if key.startswith(("cond_stage_model.", "conditioner.")):
        return Part.TEXT_ENCODER
    return Part.OTHER


@dataclass(frozen=True)
class ConvertRequest:
    path: Path
    precision: str = "fp32"
    pruning: Pruning = Pruning.DISABLED
    only: Part | None = None
    vae: Path | None = None
    out: Path | None = None


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    tensors: int
    bytes_before: int
    bytes_after: int


def ema_key(key: str) -> str:
    """The EMA copy's name of a model weight, as the LDM EMA module stores it."""
    return "model_ema." + key[6:].replace(".", "")


def default_name(req: ConvertRequest) -> str:
    stem = req.path.stem
    if (req.precision, req.pruning, req.only, req.vae) == ("fp32", Pruning.DISABLED, None, None):
        return stem + ".safetensors"
    name = f"{stem}-{req.precision}"
    if req.pruning is not Pruning.DISABLED:
        name += f"-{req.pruning.value}"
    if req.only is not None:
        name += f"-{req.only.value}"
    return name + ".safetensors"


def convert(req: ConvertRequest) -> ConvertResult:
    if req.precision not in PRECISIONS:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"precision {req.precision!r}: one of {', '.join(PRECISIONS)}",
        )
    src = open_source(req.path)
    out = req.out or req.path.with_name(default_name(req))
    if out.resolve() == req.path.resolve():
        raise DreamwireError(ErrorCode.INVALID_JOB, f"refusing to overwrite {req.path}")
    sources = _kept(src, req)
    if req.vae is not None:
        _bake(sources, open_source(req.vae), req)
    if not sources:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{req.path.name} has no {req.only.value if req.only else ''} weights to write",
        )
    cast = PRECISIONS[req.precision]
    plan: dict[str, tuple[TensorSpec, TensorSource, str]] = {}
    for key, (source, name) in sources.items():
        spec = source.spec(name)
        if cast is not None and spec.dtype.is_floating_point:
            spec = TensorSpec(cast, spec.shape)
        plan[key] = (spec, source, name)

    def make(key: str) -> torch.Tensor:
        spec, source, name = plan[key]
        return source.get(name).to(spec.dtype)

    write_streaming(out, ((k, v[0]) for k, v in plan.items()), make, dict(src.metadata) or None)
    before = req.path.stat().st_size
    return ConvertResult(out, len(plan), before, out.stat().st_size)


def _kept(src: TensorSource, req: ConvertRequest) -> dict[str, tuple[TensorSource, str]]:
    """Output key -> (source, key there), after pruning and the part filter."""
    kept: dict[str, tuple[TensorSource, str]] = {}
    names = src.names()
    if req.pruning is Pruning.EMA_ONLY and not any(k.startswith("model_ema.") for k in names):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{req.path.name} holds no EMA weights (no model_ema.* keys): nothing for ema-only",
        )
    for key in names:
        if req.pruning is not Pruning.DISABLED and _TRAINING_ONLY.match(key):
            continue
        if req.pruning is Pruning.NO_EMA and "model_ema" in key:
            continue
        read_as = key
        if req.pruning is Pruning.EMA_ONLY:
            if key.startswith("model_ema.") and key not in EMA_COUNTERS:
                continue
            if ema_key(key) in src:
                read_as = ema_key(key)
        if req.only is not None and part_of(key) is not req.only:
            continue
        kept[key] = (src, read_as)
    return kept


def _bake(kept: dict, vae: TensorSource, req: ConvertRequest) -> None:
    for key, vkey in baked_vae_keys(vae, kept, req.vae.name, req.path.name).items():
        kept[key] = (vae, vkey)
