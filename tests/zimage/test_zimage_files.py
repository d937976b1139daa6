"""Z-Image files as ComfyUI users have them: found, identified from their headers, loaded
into the same pipeline as the diffusers folder, and a missing part named in one error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Format, Kind
from dreamwire.backend.library.safetensors_header import Header
from dreamwire.backend.library.zimage_identify import qwen3_arch, zimage_file
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job


def _header(shapes: dict[str, list[int]]) -> Header:
    return Header({k: {"dtype": "BF16", "shape": s} for k, s in shapes.items()}, {})


def test_every_file_is_identified(zimage_library):
    found = {(e.kind, e.name): e for e in zimage_library.entries()}
    for name, fmt in (
        ("z_image_turbo_bf16", Format.SAFETENSORS),
        ("z_image_turbo-Q8_0", Format.GGUF),
        ("z_image_turbo_fp8_e4m3fn", Format.SAFETENSORS),
        ("tiny-zimage", Format.DIFFUSERS),
    ):
        entry = found[(Kind.CHECKPOINT, name)]
        assert (entry.format, entry.arch) == (fmt, "tiny-zimage"), name
    assert found[(Kind.TEXT_ENCODER, "qwen_3_4b")].arch == "tiny-qwen3"
    assert found[(Kind.VAE, "ae")].arch == "tiny-flux-vae"
    assert zimage_library.missing_parts() == {}


def test_real_widths_and_lookalikes_are_told_apart():
    nextdit = "noise_refiner.0.attention.k_norm.weight"
    shapes = {"cap_embedder.1.weight": [3840, 2560], nextdit: [128]}
    assert zimage_file(_header(shapes)).arch == "zimage-turbo"
    prefixed = _header({"model.diffusion_model." + k: s for k, s in shapes.items()})
    assert zimage_file(prefixed).prefix == "model.diffusion_model."
    # Lumina Image 2.0 has the same NextDiT keys at 2304: not a Z-Image model.
    assert zimage_file(_header({"cap_embedder.1.weight": [2304, 2304], nextdit: [96]})) is None
    qwen3 = {"model.layers.0.self_attn.q_norm.weight": [128], "model.embed_tokens.weight": []}
    assert qwen3_arch(_header(qwen3 | {"model.embed_tokens.weight": [151936, 2560]})) == "qwen3-4b"
    assert qwen3_arch(_header(qwen3 | {"model.embed_tokens.weight": [151936, 4096]})) == "qwen3-8b"
    # Qwen2.5 (no per-head q/k norms) is not Qwen3.
    qwen25 = {"model.layers.0.self_attn.q_proj.weight": [2048, 2048]}
    assert qwen3_arch(_header(qwen25)) is None


def _state(module) -> dict:
    return {k: v.detach() for k, v in module.state_dict().items()}


def test_comfy_files_load_the_original_weights(zimage_tree, zimage_library):
    pipe = zimage_library.load_pipeline("z_image_turbo_bf16")
    for name in ("transformer", "text_encoder", "vae"):
        got, want = _state(getattr(pipe, name)), _state(zimage_tree.parts[name])
        assert got.keys() == want.keys(), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
    # The fp8 copy stays fp8 in memory (diffusers' layerwise casting upcasts per layer).
    fp8 = zimage_library.load_pipeline("z_image_turbo_fp8_e4m3fn").transformer
    assert fp8.layers[0].attention.to_q.weight.dtype == torch.float8_e4m3fn


def _image(engine, model: str) -> np.ndarray:
    job = Job(
        model=model, prompt="a red chair", sampler="Euler", steps=1, width=64, height=64, seed=3
    )
    return engine.run(job).images[0].image.astype(int)


def test_single_file_diffusers_folder_and_gguf_give_the_same_picture(zimage_engine):
    single = _image(zimage_engine, "z_image_turbo_bf16")
    assert np.array_equal(single, _image(zimage_engine, "tiny-zimage"))
    # Q8_0 keeps 8 bits per weight, fp8 e4m3 3 mantissa bits (kept fp8 in memory, each
    # layer upcast as it runs): close to the full-precision picture, not equal.
    for name, most in (("z_image_turbo-Q8_0", 24), ("z_image_turbo_fp8_e4m3fn", 64)):
        quantized = _image(zimage_engine, name)
        assert 0 < np.abs(quantized - single).max() <= most, name


def _install_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst, ignore=lambda _dir, found: [n for n in found if n in names])
    return dst


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("qwen_3_4b.safetensors",), ["qwen_3_4b.safetensors", "models/text_encoders"]),
        (("ae.safetensors",), ["ae.safetensors", "models/vae"]),
        (("qwen25_tokenizer",), ["DREAMWIRE_QWEN_TOKENIZER", "qwen25_tokenizer"]),
    ],
)
def test_a_missing_part_is_named(zimage_tree, tmp_path, removed, named):
    # Without the diffusers folder, whose parts would otherwise stand in.
    root = _install_without(zimage_tree.root, tmp_path / "ComfyUI", "diffusers", *removed)
    library = ModelLibrary([root])
    message = library.missing_parts()["z_image_turbo_bf16"]
    assert all(n in message for n in named), message
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline("z_image_turbo_bf16")
    assert err.value.code == ErrorCode.MODEL_PART_MISSING
    assert "Z-Image" in err.value.message
