"""LoRA as a conditioner: the job's LoRAs (JobPlan.loras: the job's list and the prompt's
<lora:...> tags, with their multipliers) found and read before anything is patched, their
deltas added to the model's weights for the whole job, and the exact originals put back
after it (lora.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.engine.hooks import Conditioner, JobContext
from dreamwire.backend.families import spec_for
from dreamwire.backend.library import hashing
from dreamwire.backend.library.weight_formats import stored_compressed
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import format_hashes

from . import lora
from .files import library_entries


@dataclass(frozen=True)
class ResolvedLoras:
    files: list[tuple[lora.LoraFile, float, float]]  # (file, UNet and text multipliers)
    hashes: dict[str, str]  # A1111's short hash per name, as the prompt gave it


class LoraConditioner(Conditioner):
    name = "conditioning.lora"

    def resolve(self, ctx: JobContext) -> ResolvedLoras | None:
        assert ctx.plan is not None, "the engine plans every job before it runs"
        requests = ctx.plan.loras
        if not requests:
            return None
        denoiser = ctx.model.components.get(spec_for(ctx.model.family).denoiser)
        if denoiser is not None and stored_compressed(denoiser):
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"LoRAs cannot be applied to {ctx.model.name}: its weights are stored "
                "quantized (GGUF or fp8), and adding to them would round the LoRA away or "
                "corrupt them; use an fp16/bf16 copy of the model for LoRAs",
            )
        available = library_entries(ctx.library, "lora")
        files, hashes = [], {}
        for r in requests:
            path = lora.resolve(r.name, available)
            files.append((lora.read_cached(path, r.name), r.unet, r.text))
            hashes[r.name] = lora_hash(path)
        return ResolvedLoras(files, hashes)

    @contextmanager
    def attach_job(self, ctx: JobContext, resolved: ResolvedLoras) -> Iterator[None]:
        # For the whole job, not per pass: Hires.fix and every SD-upscale tile run with the
        # same weights, patched once (as A1111 activates networks once per job).
        patch = lora.apply(resolved.files, ctx.model.components, ctx.model.name, ctx.model.family)
        try:
            ctx.handled.add("loras")
            # A1111's Lora extension writes each network by the name the prompt gave it.
            ctx.infotext_extra["Lora hashes"] = format_hashes(resolved.hashes)
            yield
        finally:
            patch.restore()

    def attach(self, ctx: JobContext, resolved: ResolvedLoras, mode: str):
        return nullcontext()

    def capabilities(self, library) -> dict:
        """The welcome's `lora_families`: the model families each LoRA fits, from headers
        only (lora_family.py), so a host lists a checkpoint's own LoRAs first."""
        from dreamwire.backend.library import Kind

        from .lora_family import lora_families

        return {"lora_families": lora_families(library.entries(Kind.LORA))}


def lora_hash(path: Path) -> str:
    """A1111's LoRA short hash: the addnet hash (tensor data only) of a .safetensors
    file, the file's sha256 otherwise; 12 hex digits."""
    if path.suffix.lower() == ".safetensors":
        return hashing.addnet_hash(path)
    return hashing.sha256(path)[:12]
