"""A1111's Checkpoint Merger (modules/extras.py `run_modelmerger`, webui 1.10), streamed.

The rules, as A1111 applies them to checkpoints A (primary), B (secondary), C (tertiary):

- "Weighted sum": (1 - M) * A + M * B; "Add difference": A + M * (B - C); "No
  interpolation": A alone (a format conversion: fp16, a baked VAE, discarded keys).
- Only keys of A whose name contains "model" and that B also has are merged; every other
  key of A is copied as it is; keys only B has are dropped. The CLIP position ids are never
  merged (`checkpoint_dict_skip_on_merge`).
- For "Add difference", B's keys that C lacks count as no difference (zeros).
- An inpainting (9 input channels) or instruct-pix2pix (8) A merges its first 4 input
  channels with a 4-channel B and keeps the rest; the other way round is refused. The
  result's name then ends in ".inpainting" / ".instruct-pix2pix".
- fp16 halves merged float32 tensors (with "No interpolation": every float32 tensor);
  a baked VAE replaces A's `first_stage_model.*` tensors (its `loss*` and EMA counters are
  not part of it); keys matching the discard regex are removed last.
- The name, when none is given: "{1-M}({A}) + {M}({B})", "{A} + {M}({B} - {C})", or A's,
  with M rounded to 2 places as Python prints it.
- Metadata: A's, B's and C's safetensors metadata copied (in that order), "format": "pt",
  and the merge recipe ("sd_merge_recipe") and its models ("sd_merge_models") by sha256.

The arithmetic is A1111's expressions in the tensors' own dtypes, so results match its
merger bit for bit. Tensors are read, merged and written one key at a time
(tensor_stream), so merging two SDXL files holds a few tensors, not two files, in memory.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import hashing
from .tensor_stream import TensorSource, TensorSpec, open_source, write_streaming

SKIP_ON_MERGE = frozenset({"cond_stage_model.transformer.text_model.embeddings.position_ids"})
VAE_PREFIX = "first_stage_model."
VAE_IGNORE = frozenset({"model_ema.decay", "model_ema.num_updates"})


class MergeMethod(str, Enum):
    WEIGHTED_SUM = "Weighted sum"
    ADD_DIFFERENCE = "Add difference"
    NO_INTERPOLATION = "No interpolation"

    @property
    def models(self) -> int:
        """How many checkpoints the method takes."""
        return {self.NO_INTERPOLATION: 1, self.WEIGHTED_SUM: 2, self.ADD_DIFFERENCE: 3}[self]


def weighted_sum(theta0: torch.Tensor, theta1: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((1 - alpha) * theta0) + (alpha * theta1)


def get_difference(theta1: torch.Tensor, theta2: torch.Tensor) -> torch.Tensor:
    return theta1 - theta2


def add_difference(theta0: torch.Tensor, diff: torch.Tensor, alpha: float) -> torch.Tensor:
    return theta0 + (alpha * diff)


def to_half(t: torch.Tensor, enable: bool) -> torch.Tensor:
    return t.half() if enable and t.dtype == torch.float32 else t


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as the library lists it."""

    name: str  # the library's name: path under the checkpoint folder, no extension
    path: Path

    @property
    def model_name(self) -> str:
        """A1111's CheckpointInfo.model_name: the name with folders joined by "_"."""
        return self.name.replace("/", "_").replace("\\", "_")

    @property
    def title_name(self) -> str:
        """A1111's CheckpointInfo.name: the relative path with its extension."""
        return self.name + self.path.suffix


@dataclass(frozen=True)
class MergeRequest:
    primary: Checkpoint
    secondary: Checkpoint | None
    tertiary: Checkpoint | None
    method: MergeMethod
    multiplier: float
    fp16: bool = False
    vae: Path | None = None
    vae_name: str = "None"  # as A1111's recipe names it ("None" when none is baked)
    discard: str = ""
    custom_name: str = ""
    metadata: bool = True  # copy the inputs' metadata and add the recipe


@dataclass(frozen=True)
class MergeResult:
    path: Path
    inpainting: bool
    instruct_pix2pix: bool
    tensors: int


@dataclass(frozen=True)
class _KeyPlan:
    spec: TensorSpec
    make: Callable[[], torch.Tensor]


def check_request(req: MergeRequest) -> None:
    """The request's own consistency, before any file is opened."""
    if req.method.models >= 2 and req.secondary is None:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{req.method.value} needs a secondary model")
    if req.method.models == 3 and req.tertiary is None:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{req.method.value} needs a tertiary model")
    if req.discard:
        try:
            re.compile(req.discard)
        except re.error as exc:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"--discard {req.discard!r} is not a regex ({exc})"
            ) from None
    if "/" in req.custom_name or "\\" in req.custom_name or req.custom_name.startswith("."):
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"--name {req.custom_name!r} must be a plain file name"
        )


def merge(req: MergeRequest, out_dir: Path | None = None) -> MergeResult:
    """Merge as A1111 does and write `<name>.safetensors` beside A (or into `out_dir`)."""
    check_request(req)
    method = req.method
    a = open_source(req.primary.path)
    b = open_source(req.secondary.path) if method.models >= 2 else None
    c = open_source(req.tertiary.path) if method.models == 3 else None
    vae = open_source(req.vae) if req.vae is not None else None
    m = req.multiplier
    flags = {"inpainting": False, "instruct_pix2pix": False}

    def b_prime(key: str) -> tuple[TensorSpec, Callable[[], torch.Tensor]]:
        """B's tensor as the A-B merge sees it: B - C for "Add difference"."""
        sb = b.spec(key)
        if c is None or key in SKIP_ON_MERGE:
            return sb, lambda: b.get(key)
        if key not in c:
            return sb, lambda: torch.zeros(sb.shape, dtype=sb.dtype)
        sc = c.spec(key)
        if sc.shape != sb.shape:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"{key}: B has shape {sb.shape}, C {sc.shape}; they cannot be subtracted",
            )
        dtype = _result_dtype(get_difference, sb.dtype, sc.dtype)
        return TensorSpec(dtype, sb.shape), lambda: get_difference(b.get(key), c.get(key))

    plan: dict[str, _KeyPlan] = {}
    for key in a.names():
        sa = a.spec(key)
        plan[key] = _KeyPlan(sa, lambda key=key: a.get(key))
        merged = b is not None and "model" in key and key in b and key not in SKIP_ON_MERGE
        if not merged:
            continue
        sb, get_b = b_prime(key)
        theta = weighted_sum if method is MergeMethod.WEIGHTED_SUM else add_difference
        if sa.shape == sb.shape:
            dtype = _half_dtype(_result_dtype(theta, sa.dtype, sb.dtype), req.fp16)
            plan[key] = _KeyPlan(
                TensorSpec(dtype, sa.shape),
                lambda key=key, get_b=get_b, theta=theta: to_half(
                    theta(a.get(key), get_b(), m), req.fp16
                ),
            )
            continue
        kind = _extra_channels(key, sa.shape, sb.shape)
        flags[kind] = True

        def channels(key=key, get_b=get_b, theta=theta):
            t = a.get(key).clone()
            t[:, 0:4, :, :] = theta(t[:, 0:4, :, :], get_b(), m)
            return to_half(t, req.fp16)

        plan[key] = _KeyPlan(TensorSpec(_half_dtype(sa.dtype, req.fp16), sa.shape), channels)

    if vae is not None:
        for key, vkey in baked_vae_keys(vae, plan, req.vae.name, req.primary.name).items():
            sv = vae.spec(vkey)
            plan[key] = _KeyPlan(
                TensorSpec(_half_dtype(sv.dtype, req.fp16), sv.shape),
                lambda vkey=vkey: to_half(vae.get(vkey), req.fp16),
            )
    if req.fp16 and b is None:
        for key, kp in list(plan.items()):
            if kp.spec.dtype == torch.float32:
                plan[key] = _KeyPlan(
                    TensorSpec(torch.float16, kp.spec.shape), lambda make=kp.make: make().half()
                )
    if req.discard:
        regex = re.compile(req.discard)
        plan = {k: v for k, v in plan.items() if not regex.search(k)}

    name = result_name(req, flags["inpainting"], flags["instruct_pix2pix"])
    folder = out_dir or req.primary.path.parent
    out = folder / name
    inputs = {ck.path.resolve() for ck in (req.primary, req.secondary, req.tertiary) if ck}
    if out.resolve() in inputs:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"refusing to overwrite an input: {out}")
    meta = _metadata(req, (a, b, c), flags) if req.metadata else None
    write_streaming(out, ((k, v.spec) for k, v in plan.items()), lambda k: plan[k].make(), meta)
    _copy_config(req, out)
    return MergeResult(out, flags["inpainting"], flags["instruct_pix2pix"], len(plan))


def baked_vae_keys(vae: TensorSource, present, vae_name: str, model_name: str) -> dict[str, str]:
    """A1111's VAE baking: which checkpoint key each of the VAE file's tensors replaces
    (`first_stage_model.` + its name, where the checkpoint has it; a VAE's `loss*` and EMA
    counters are not part of it)."""
    keys = {
        VAE_PREFIX + vkey: vkey
        for vkey in vae.names()
        if VAE_PREFIX + vkey in present and not vkey.startswith("loss") and vkey not in VAE_IGNORE
    }
    if not keys:
        # A1111 bakes nothing, silently, from a VAE in another key layout (diffusers').
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{vae_name} has none of {model_name}'s VAE keys ({VAE_PREFIX}*): it is not a "
            "VAE in the original (LDM) layout",
        )
    return keys


def _extra_channels(key: str, sa: tuple, sb: tuple) -> str:
    """Which extra-channel model A is when A and B differ only in input channels."""
    if len(sa) >= 2 and sa[0:1] + sa[2:] == sb[0:1] + sb[2:]:
        if sa[1] == 4 and sb[1] == 9:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                "When merging inpainting model with a normal one, A must be the inpainting model.",
            )
        if sa[1] == 4 and sb[1] == 8:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                "When merging instruct-pix2pix model with a normal one, A must be the "
                "instruct-pix2pix model.",
            )
        if sa[1] == 8 and sb[1] == 4:
            return "instruct_pix2pix"
        if sa[1] == 9 and sb[1] == 4:
            return "inpainting"
    raise DreamwireError(
        ErrorCode.MODEL_MISMATCH, f"Bad dimensions for merged layer {key}: A={sa}, B={sb}"
    )


def _result_dtype(fn, da: torch.dtype, db: torch.dtype) -> torch.dtype:
    """The dtype A1111's expression gives for these operand dtypes (torch's promotion with
    a Python float, which turns integer tensors into the default float)."""
    x, y = torch.zeros(1, dtype=da), torch.zeros(1, dtype=db)
    return (fn(x, y) if fn is get_difference else fn(x, y, 0.5)).dtype


def _half_dtype(dtype: torch.dtype, fp16: bool) -> torch.dtype:
    return torch.float16 if fp16 and dtype == torch.float32 else dtype


def result_name(req: MergeRequest, inpainting: bool, instruct_pix2pix: bool) -> str:
    m = req.multiplier
    if req.custom_name:
        name = req.custom_name
    elif req.method is MergeMethod.WEIGHTED_SUM:
        a, b = req.primary.model_name, req.secondary.model_name
        name = f"{round(1 - m, 2)}({a}) + {round(m, 2)}({b})"
    elif req.method is MergeMethod.ADD_DIFFERENCE:
        a, b, c = req.primary.model_name, req.secondary.model_name, req.tertiary.model_name
        name = f"{a} + {round(m, 2)}({b} - {c})"
    else:
        name = req.primary.model_name
    name += ".inpainting" if inpainting else ""
    name += ".instruct-pix2pix" if instruct_pix2pix else ""
    return name + ".safetensors"


def _parsed(meta: dict[str, str], key: str):
    """A metadata value as A1111 reads it: JSON objects parsed, other strings as they are."""
    v = meta.get(key)
    if isinstance(v, str) and v[0:1] == "{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _metadata(req: MergeRequest, sources, flags) -> dict[str, str]:
    a, b, c = sources
    meta: dict[str, str] = {}
    for src in (a, b, c):
        if src is not None:
            meta.update(src.metadata)
    meta["format"] = "pt"
    infos = [(req.primary, a), (req.secondary, b), (req.tertiary, c)]
    sha = {
        ck.path: hashing.sha256(ck.path) for ck, src in infos if ck is not None and src is not None
    }
    recipe = {
        "type": "webui",
        "primary_model_hash": sha[req.primary.path],
        "secondary_model_hash": sha[req.secondary.path] if b is not None else None,
        "tertiary_model_hash": sha[req.tertiary.path] if c is not None else None,
        "interp_method": req.method.value,
        "multiplier": req.multiplier,
        "save_as_half": req.fp16,
        "custom_name": req.custom_name,
        "config_source": 0,
        "bake_in_vae": req.vae_name,
        "discard_weights": req.discard,
        "is_inpainting": flags["inpainting"],
        "is_instruct_pix2pix": flags["instruct_pix2pix"],
    }
    models: dict = {}
    for ck, src in infos:
        if ck is None or src is None:
            continue
        src_meta = src.metadata
        models[sha[ck.path]] = {
            "name": ck.title_name,
            "legacy_hash": hashing.legacy_hash(ck.path),
            "sd_merge_recipe": _parsed(src_meta, "sd_merge_recipe"),
        }
        nested = _parsed(src_meta, "sd_merge_models")
        models.update(nested if isinstance(nested, dict) else {})
    meta["sd_merge_recipe"] = json.dumps(recipe)
    meta["sd_merge_models"] = json.dumps(models)
    return meta


def _copy_config(req: MergeRequest, out: Path) -> None:
    """A1111's config source "A, B or C": the first input's .yaml travels with the result
    (an SD2 v-model's config says it is one)."""
    for ck in (req.primary, req.secondary, req.tertiary):
        if ck is None:
            continue
        cfg = ck.path.with_suffix(".yaml")
        if cfg.is_file():
            shutil.copyfile(cfg, out.with_name(out.name.removesuffix(".safetensors") + ".yaml"))
            return
