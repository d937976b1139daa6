"""Flux.2 Klein's single files as ComfyUI ships them (BFL's transformer in bf16's and fp8's
place and as a GGUF, Qwen3-4B, Flux.2's VAE): found, identified from their headers, loaded through
diffusers' own Flux.2 converter into the folder's weights, the same picture as the diffusers
folder, and a missing part named in one error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Format, Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job

SINGLE = "flux-2-klein-4b"
FP8 = "flux-2-klein-4b-fp8"
GGUF = "flux-2-klein-4b-Q8_0"


def test_every_file_is_identified(klein_library):
    found = {(e.kind, e.name): e for e in klein_library.entries()}
    for name, fmt in ((SINGLE, Format.SAFETENSORS), (FP8, Format.SAFETENSORS), (GGUF, Format.GGUF)):
        entry = found[(Kind.CHECKPOINT, name)]
        assert (entry.format, entry.arch) == (fmt, "tiny-flux2"), name
    assert found[(Kind.TEXT_ENCODER, "qwen_3_4b")].arch == "tiny-qwen3"
    assert found[(Kind.VAE, "flux2-vae")].arch == "tiny-flux2-vae"
    assert klein_library.missing_parts() == {}


def _state(module) -> dict:
    return {k: v.detach() for k, v in module.state_dict().items()}


def test_single_files_load_the_original_weights(klein_parts, klein_library):
    pipe = klein_library.load_pipeline(SINGLE)
    # The text encoder is Qwen3Model: the causal LM's model (Klein reads hidden states only).
    originals = {**klein_parts, "text_encoder": klein_parts["text_encoder"].model}
    for name in ("transformer", "vae", "text_encoder"):
        got, want = _state(getattr(pipe, name)), _state(originals[name])
        assert got.keys() == want.keys(), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
    assert type(pipe).__name__ == "Flux2KleinPipeline" and pipe.config.is_distilled
    # The fp8 copy stays fp8 in memory (diffusers' layerwise casting upcasts per layer).
    fp8 = klein_library.load_pipeline(FP8).transformer
    assert fp8.single_transformer_blocks[0].attn.to_out.weight.dtype == torch.float8_e4m3fn
    # The GGUF stays quantized (diffusers' GGUF layers dequantize per call).
    gguf = klein_library.load_pipeline(GGUF).transformer
    assert type(gguf.transformer_blocks[0].attn.to_q.weight).__name__ == "GGUFParameter"


def test_single_files_give_the_diffusers_folder_picture(klein_engine):
    base = dict(prompt="a red chair", sampler="Euler", steps=2, width=64, height=64, seed=3)
    pictures = {
        model: klein_engine.run(Job(model=model, **base)).images[0].image.astype(int)
        for model in (SINGLE, "klein", FP8)
    }
    assert np.array_equal(pictures[SINGLE], pictures["klein"])
    # fp8 e4m3 keeps 3 mantissa bits (each layer upcast as it runs): close, not equal.
    assert 0 < np.abs(pictures[FP8] - pictures[SINGLE]).max() <= 64


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("qwen_3_4b.safetensors",), ["qwen_3_4b.safetensors", "models/text_encoders"]),
        (("flux2-vae.safetensors",), ["flux2-vae.safetensors", "models/vae"]),
    ],
)
def test_a_missing_part_is_one_error_naming_the_file(klein_root, tmp_path, removed, named):
    # Without the diffusers folder (its parts would not stand in for ComfyUI's files).
    root = tmp_path / "ComfyUI"
    shutil.copytree(klein_root, root, ignore=lambda _d, found: [n for n in found if n in removed])
    shutil.rmtree(root / "models" / "diffusers")
    library = ModelLibrary([root])
    assert all(part in library.missing_parts()[SINGLE] for part in named)
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline(SINGLE)
    assert err.value.code == ErrorCode.MODEL_PART_MISSING
    assert all(part in err.value.message for part in named)


def test_a_file_without_its_vae_statistics_is_refused_by_name(klein_root, tmp_path):
    from safetensors.torch import load_file, save_file

    root = tmp_path / "ComfyUI"
    shutil.copytree(klein_root / "models", root / "models")
    shutil.copytree(klein_root / "comfy", root / "comfy")
    vae = Path(root / "models" / "vae" / "flux2-vae.safetensors")
    save_file({k: v for k, v in load_file(str(vae)).items() if not k.startswith("bn.")}, str(vae))
    with pytest.raises(DreamwireError) as err:
        ModelLibrary([root]).load_pipeline(SINGLE)
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    assert "flux2-vae" in err.value.message and "bn.running_mean" in err.value.message
