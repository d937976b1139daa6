"""Telling Flux.2 files apart (Black Forest Labs' Flux.2 dev and Klein): Klein 4B's run,
Klein 9B's and dev's are recognised and refused by name.

A Flux.2 transformer in BFL's layout (flux-2-klein-4b.safetensors, ComfyUI's
diffusion_models copies, bare or under `model.diffusion_model.`) shares its modulation
across blocks: `single_stream_modulation.lin.weight` (diffusers' own detection key), where
Flux.1 has one per block. Its text input width names the model: Klein 4B reads Qwen3-4B's
three hidden layers (3 x 2560), Klein 9B Qwen3-8B's (3 x 4096), Flux.2 dev Mistral's
(3 x 5120). Flux.1's `double_blocks.*` names are there too, so this is asked first.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend.library.safetensors_header import Header

_MARKER = "single_stream_modulation.lin.weight"
_TEXT_IN = "txt_in.weight"
ARCHS_BY_TEXT_WIDTH = {7680: "flux2-klein-4b", 12288: "flux2-klein-9b", 15360: "flux2-dev"}
TINY_MAX_WIDTH = 256


def arch_for(text_width: int, hidden: int) -> str:
    if hidden <= TINY_MAX_WIDTH:
        return "tiny-flux2"
    return ARCHS_BY_TEXT_WIDTH.get(text_width, "flux2")


@dataclass(frozen=True)
class Flux2File:
    arch: str  # "flux2-klein-4b", "tiny-flux2", or a recognised-only arch
    prefix: str  # where the transformer's keys start

    def detail(self) -> dict:
        return {"family": "flux2", "transformer_prefix": self.prefix}


def flux2_file(header: Header) -> Flux2File | None:
    for prefix in ("", "model.diffusion_model."):
        if prefix + _MARKER in header.tensors:
            shape = header.shape(prefix + _TEXT_IN) or (0, 0)
            return Flux2File(arch_for(shape[-1], shape[0]), prefix)
    return None
