"""Every Flux file format loads offline into one FluxPipeline with the original weights.

Tolerances: BFL safetensors and the all-in-one are exact (fp32 files); fp8 e4m3fn keeps 3
mantissa bits (relative error at most 2^-4, plus 2^-9 near zero); GGUF Q8_0 errs by at most
half a step of 1/127 of each 32-weight block's largest magnitude, Q4_0 by up to 1/8 of it
(the largest weight of the other sign is clamped at 7 steps of 8)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamwire.backend.library import ModelLibrary
from dreamwire.shared.errors import DreamwireError, ErrorCode
from tests.support.flux_pictures import flux_picture


def _weights(module) -> dict[str, torch.Tensor]:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    out = {}
    for name, tensor in module.state_dict().items():
        if isinstance(tensor, GGUFParameter):
            tensor = dequantize_gguf_tensor(tensor)
        out[name] = tensor.detach().float()
    return out


def _max_relative_error(loaded, original) -> float:
    """The largest error of any weight, relative to its tensor's largest magnitude."""
    a, b = _weights(loaded), _weights(original)
    assert set(a) == set(b)
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)).item() for k in b)


def _assert_fp8_close(loaded, original) -> None:
    a, b = _weights(loaded), _weights(original)
    assert set(a) == set(b)
    for key in b:
        assert torch.all((a[key] - b[key]).abs() <= b[key].abs() * 2**-4 + 2**-9), key


def _assert_equal(loaded, original) -> None:
    a, b = _weights(loaded), _weights(original)
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.fixture(scope="module")
def comfy_library(flux_trees):
    return ModelLibrary([flux_trees.comfy])


def test_transformer_file_is_assembled_with_the_library_parts(flux_trees, comfy_library):
    pipe = comfy_library.load_pipeline("flux1-dev")
    parts = flux_trees.parts
    assert type(pipe).__name__ == "FluxPipeline"
    _assert_equal(pipe.transformer, parts["transformer"])
    _assert_equal(pipe.text_encoder, parts["text_encoder"])
    # t5xxl_fp16.safetensors: half precision, upcast on load.
    assert _max_relative_error(pipe.text_encoder_2, parts["text_encoder_2"]) < 1e-3
    _assert_equal(pipe.vae, parts["vae"])
    # The tokenizers: CLIP's from open_clip's BPE, T5's from ComfyUI's own folder.
    assert pipe.tokenizer("a cat").input_ids[0] == 49406
    assert pipe.tokenizer_2("a photo of a cat").input_ids[-1] == 1  # </s>
    assert pipe.transformer.config.guidance_embeds


def _image(pipe):
    return flux_picture(pipe, "a photo of a cat", seed=0)[None]


def test_all_in_one_checkpoint_loads_from_its_own_sections(flux_trees, tmp_path):
    from dreamwire.backend.tiny.flux import write_flux_diffusers_folder

    # Only the checkpoint: no separate text encoders or VAE anywhere.
    models = tmp_path / "ComfyUI" / "models" / "checkpoints"
    models.mkdir(parents=True)
    shutil.copy(flux_trees.comfy / "models/checkpoints/flux1-dev-aio.safetensors", models)
    shutil.copytree(flux_trees.comfy / "comfy", tmp_path / "ComfyUI" / "comfy")
    write_flux_diffusers_folder(flux_trees.parts, models / "flux1-dev-diffusers")
    library = ModelLibrary([tmp_path / "ComfyUI"])
    pipe = library.load_pipeline("flux1-dev-aio")
    for name in ("transformer", "text_encoder", "text_encoder_2", "vae"):
        _assert_equal(getattr(pipe, name), flux_trees.parts[name])
    # The image the diffusers folder of the same weights gives: nothing (a buffer, a config
    # value, a tokenizer) differs between the two ways in. Not bit-equal: the weights'
    # memory layouts differ between the two loaders, so kernels may sum in another order.
    image = _image(pipe)
    assert np.isfinite(image).all() and float(image.std()) > 0
    reference = _image(library.load_pipeline("flux1-dev-diffusers"))
    np.testing.assert_allclose(image, reference, rtol=0, atol=1e-5)


def test_fp8_transformer_loads_within_fp8_precision(flux_trees, comfy_library):
    pipe = comfy_library.load_pipeline("flux1-dev-fp8")
    _assert_fp8_close(pipe.transformer, flux_trees.parts["transformer"])
    # Stored as the file has it (layerwise casting): the blocks' matrices stay fp8 in
    # memory; norms and embeddings (diffusers' skip list) in the compute dtype.
    linear = pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert linear.dtype == torch.float8_e4m3fn
    assert pipe.transformer.x_embedder.weight.dtype == torch.float8_e4m3fn
    image = _image(pipe)
    assert np.isfinite(image).all()
    # Running upcasts each layer and puts it back: still fp8 afterwards.
    assert pipe.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn


@pytest.mark.parametrize(
    ("name", "bound"), [("flux1-dev-Q8_0", 1 / 127), ("flux1-dev-Q4_0", 1 / 8)]
)
def test_gguf_transformer_stays_quantized_and_close(flux_trees, comfy_library, name, bound):
    from diffusers.quantizers.gguf.utils import GGUFParameter

    pipe = comfy_library.load_pipeline(name)
    quant = name.rsplit("-", 1)[-1]
    kinds = {
        p.quant_type.name for p in pipe.transformer.parameters() if isinstance(p, GGUFParameter)
    }
    assert kinds == {quant}  # the block matrices stay packed in memory
    error = _max_relative_error(pipe.transformer, flux_trees.parts["transformer"])
    assert 0 < error <= bound * 1.01


def test_forge_install_schnell_with_fp8_t5(flux_trees):
    pipe = ModelLibrary([flux_trees.forge]).load_pipeline("flux1-schnell")
    _assert_equal(pipe.transformer, flux_trees.schnell)
    assert not pipe.transformer.config.guidance_embeds
    _assert_fp8_close(pipe.text_encoder_2, flux_trees.parts["text_encoder_2"])
    # Forge's copy of the tokenizer (backend/huggingface/.../tokenizer_2) was found.
    assert pipe.tokenizer_2("a cat").input_ids[-1] == 1


def test_gguf_t5_is_unpacked_into_the_text_encoder(flux_trees, tmp_path):
    # Without t5xxl_fp16 (preferred when both are there) the GGUF T5 is the one found.
    root = _install_without(
        flux_trees.comfy,
        tmp_path / "ComfyUI",
        "flux1-dev-aio.safetensors",
        "t5xxl_fp16.safetensors",
    )
    pipe = ModelLibrary([root]).load_pipeline("flux1-dev")
    error = _max_relative_error(pipe.text_encoder_2, flux_trees.parts["text_encoder_2"])
    assert 0 < error <= 1.01 / 127


T5_FILES = ("t5xxl_fp16.safetensors", "t5-v1_1-xxl-encoder-Q8_0.gguf")


def test_scaled_fp8_t5_is_multiplied_out(flux_trees, tmp_path):
    from dreamwire.backend.tiny.flux_files import write_scaled_fp8_t5xxl

    root = _install_without(
        flux_trees.comfy, tmp_path / "ComfyUI", "flux1-dev-aio.safetensors", *T5_FILES
    )
    original = flux_trees.parts["text_encoder_2"]
    write_scaled_fp8_t5xxl(
        original, root / "models/text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors"
    )
    pipe = ModelLibrary([root]).load_pipeline("flux1-dev")
    a, b = _weights(pipe.text_encoder_2), _weights(original)
    for key in b:
        # fp8 keeps 3 mantissa bits of value / scale; fp16 norms are closer still.
        scale = b[key].abs().max() / 448
        assert torch.all((a[key] - b[key]).abs() <= b[key].abs() * 2**-4 + scale * 2**-9), key


def _install_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst, ignore=lambda _dir, found: [n for n in found if n in names])
    return dst


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ((*T5_FILES,), ["t5xxl_fp16.safetensors", "GGUF T5", "models/text_encoders"]),
        (("ae.safetensors",), ["ae.safetensors", "models/vae"]),
        (("clip_l.safetensors",), ["clip_l.safetensors"]),
        (("t5_tokenizer",), ["DREAMWIRE_T5_TOKENIZER", "tokenizer.json"]),
        (
            (*T5_FILES, "ae.safetensors"),
            ["t5xxl_fp16.safetensors", "ae.safetensors"],
        ),
    ],
    ids=["t5", "vae", "clip", "tokenizer", "t5-and-vae"],
)
def test_a_missing_part_is_one_clear_error(flux_trees, tmp_path, removed, named):
    # The all-in-one would supply the parts; take it away too.
    root = _install_without(
        flux_trees.comfy, tmp_path / "ComfyUI", "flux1-dev-aio.safetensors", *removed
    )
    library = ModelLibrary([root])
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline("flux1-dev")
    assert err.value.code == ErrorCode.MODEL_PART_MISSING
    assert "Flux needs" in err.value.message
    for text in named:
        assert text in err.value.message
    # The parts that are there are not reported missing.
    present = {"t5xxl_fp16.safetensors", "ae.safetensors", "clip_l.safetensors"} - set(removed)
    for name in present:
        assert name not in err.value.message


def test_tokenizer_from_the_environment(flux_trees, tmp_path, monkeypatch):
    root = _install_without(flux_trees.comfy, tmp_path / "ComfyUI", "t5_tokenizer")
    monkeypatch.setenv(
        "DREAMWIRE_T5_TOKENIZER",
        str(flux_trees.forge / "backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2"),
    )
    pipe = ModelLibrary([root]).load_pipeline("flux1-dev")
    assert pipe.tokenizer_2("a cat").input_ids[-1] == 1


def test_tokenizer_from_a_hugging_face_cache(flux_trees, tmp_path, monkeypatch):
    root = _install_without(flux_trees.comfy, tmp_path / "ComfyUI", "t5_tokenizer")
    snapshot = tmp_path / "hub/models--black-forest-labs--FLUX.1-dev/snapshots/0123abc"
    forge = flux_trees.forge / "backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2"
    shutil.copytree(forge, snapshot / "tokenizer_2")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    pipe = ModelLibrary([root]).load_pipeline("flux1-dev")
    assert pipe.tokenizer_2("a cat").input_ids[-1] == 1


def test_kontext_is_told_by_its_name(flux_trees, tmp_path):
    root = _install_without(flux_trees.comfy, tmp_path / "ComfyUI", "flux1-dev-aio.safetensors")
    unet = root / "models" / "unet"
    (unet / "flux1-dev.safetensors").rename(unet / "flux1-kontext-dev.safetensors")
    library = ModelLibrary([root])
    entry = library.find("checkpoint", "flux1-kontext-dev")
    assert entry.detail["variant"] == "kontext"
    pipe = library.load_pipeline(entry)
    assert type(pipe).__name__ == "FluxKontextPipeline"
    _assert_equal(pipe.transformer, flux_trees.parts["transformer"])


def test_fp4_checkpoint_is_listed_and_refused_by_name(flux_trees, tmp_path):
    from safetensors.torch import load_file, save_file

    # bitsandbytes' other 4-bit type (NF4 loads: tests/library/test_flux_nf4.py).
    tensors = load_file(flux_trees.comfy / "models/checkpoints/flux1-dev-aio.safetensors")
    marker = (
        "model.diffusion_model.double_blocks.0.img_attn.qkv.weight.quant_state.bitsandbytes__fp4"
    )
    tensors[marker] = torch.zeros(8, dtype=torch.uint8)
    folder = tmp_path / "Forge" / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "flux1-dev-bnb-fp4.safetensors"))
    library = ModelLibrary([tmp_path / "Forge"])
    entry = library.find("checkpoint", "flux1-dev-bnb-fp4")
    assert (entry.arch, entry.detail["fp4"], entry.detail["nf4"]) == ("tiny-flux", True, False)
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline(entry)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "FP4" in err.value.message and "GGUF" in err.value.message


def test_a_checkpoint_with_some_sections_uses_them(flux_trees, tmp_path):
    from safetensors.torch import load_file, save_file

    # A transformer saved with its VAE only: that VAE, not the one in models/vae, is used.
    tensors = load_file(flux_trees.comfy / "models/checkpoints/flux1-dev-aio.safetensors")
    kept = {k: v for k, v in tensors.items() if not k.startswith("text_encoders.")}
    kept = {k: (v * 2 if k == "vae.decoder.conv_out.bias" else v) for k, v in kept.items()}
    root = _install_without(flux_trees.comfy, tmp_path / "ComfyUI", "flux1-dev-aio.safetensors")
    save_file(kept, str(root / "models/checkpoints/flux1-dev-with-vae.safetensors"))
    library = ModelLibrary([root])
    entry = library.find("checkpoint", "flux1-dev-with-vae")
    assert entry.detail["sections"] == ["vae"] and not entry.detail["all_in_one"]
    pipe = library.load_pipeline(entry)
    expected = flux_trees.parts["vae"].decoder.conv_out.bias * 2
    assert torch.equal(pipe.vae.decoder.conv_out.bias, expected)
    _assert_equal(pipe.transformer, flux_trees.parts["transformer"])


def test_fill_transformer_loads_with_its_input_width(flux_trees, tmp_path):
    from diffusers import FluxTransformer2DModel

    from dreamwire.backend.tiny.flux_files import write_bfl_transformer

    # Fill takes the packed latents plus the masked image and mask: 384 inputs, 64 outputs.
    config = dict(flux_trees.parts["transformer"].config) | {"in_channels": 384, "out_channels": 64}
    torch.manual_seed(11)
    fill = FluxTransformer2DModel.from_config(config).eval()
    root = _install_without(flux_trees.comfy, tmp_path / "ComfyUI", "flux1-dev-aio.safetensors")
    write_bfl_transformer(fill, root / "models/unet/flux1-fill-dev.safetensors")
    library = ModelLibrary([root])
    entry = library.find("checkpoint", "flux1-fill-dev")
    assert (entry.arch, entry.detail["variant"]) == ("tiny-flux-fill", "fill")
    pipe = library.load_pipeline(entry)
    assert type(pipe).__name__ == "FluxFillPipeline"
    assert (pipe.transformer.config.in_channels, pipe.transformer.config.out_channels) == (384, 64)
    _assert_equal(pipe.transformer, fill)
