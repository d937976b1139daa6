"""The tiny models are real-format files that diffusers loads to the same weights."""

from __future__ import annotations

import hashlib

import pytest
import torch
from diffusers import StableDiffusionPipeline

from dreamwire.backend.library import Format, Kind, ModelEntry, load_pipeline, load_vae
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.backend.tiny import build, build_all


def _digests(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, label: str):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), f"{label}: keys differ: {sorted(set(sa) ^ set(sb))[:5]}"
    for key in sa:
        assert not sa[key].is_meta, f"{label}.{key} was never loaded"
        assert torch.equal(sa[key], sb[key]), f"{label}.{key} differs"


def _checkpoint(root, name, arch):
    path = root / "models" / "Stable-diffusion" / name
    fmt = Format.DIFFUSERS if path.is_dir() else Format.SAFETENSORS
    return ModelEntry(Kind.CHECKPOINT, path.stem, path, fmt, arch)


def test_layout_uses_original_ldm_keys(tiny_models):
    sd1 = read_header(tiny_models / "models/Stable-diffusion/tiny-sd1.safetensors").tensors
    prefixes = {k.split(".")[0] for k in sd1}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.0.0.weight" in sd1
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in sd1
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in sd1
    assert len(sd1["first_stage_model.encoder.mid.attn_1.q.weight"]["shape"]) == 4
    assert any(k.startswith("cond_stage_model.transformer.text_model.encoder.layers.") for k in sd1)

    xl = read_header(tiny_models / "models/Stable-diffusion/tiny-sdxl.safetensors").tensors
    assert "model.diffusion_model.label_emb.0.0.weight" in xl
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in xl
    assert "conditioner.embedders.1.model.positional_embedding" in xl
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in xl
    # OpenCLIP stores the projection as (hidden, projection), transposed from a Linear weight.
    assert xl["conditioner.embedders.1.model.text_projection"]["shape"] == [64, 32]

    vae = read_header(tiny_models / "models/VAE/tiny-vae.safetensors").tensors
    assert "encoder.conv_in.weight" in vae and "decoder.up.0.block.0.conv1.weight" in vae
    assert not any(k.startswith("first_stage_model.") for k in vae)


def test_build_is_deterministic(tiny_models, tmp_path):
    build_all(tmp_path, conditioning=False)
    ours = _digests(tmp_path / "models" / "Stable-diffusion")
    assert ours == _digests(tiny_models / "models" / "Stable-diffusion")
    assert _digests(tmp_path / "models" / "VAE") == _digests(tiny_models / "models" / "VAE")


def test_single_file_sd1_equals_diffusers_folder(tiny_models):
    single = load_pipeline(_checkpoint(tiny_models, "tiny-sd1.safetensors", "tiny-sd1"))
    folder = load_pipeline(_checkpoint(tiny_models, "tiny-sd1-diffusers", "tiny-sd1"))
    plain = StableDiffusionPipeline.from_pretrained(
        str(tiny_models / "models/Stable-diffusion/tiny-sd1-diffusers"), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder"):
        _assert_same_weights(getattr(single, name), getattr(folder, name), name)
        _assert_same_weights(getattr(single, name), getattr(plain, name), name)
    assert single.vae_scale_factor == 8
    assert single.tokenizer("a photo of a cat").input_ids == [
        49406,
        320,
        1125,
        539,
        320,
        2368,
        49407,
    ]


def test_single_file_sdxl_equals_built_components(tiny_models):
    pipe = load_pipeline(_checkpoint(tiny_models, "tiny-sdxl.safetensors", "tiny-sdxl"))
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    for name, module in build.sdxl_components().items():
        _assert_same_weights(getattr(pipe, name), module, name)
    assert pipe.tokenizer.pad_token_id == 49407
    assert pipe.tokenizer_2.pad_token_id == 0  # OpenCLIP's tokenizer pads with "!"


def test_vae_file_loads_into_autoencoder(tiny_models):
    path = tiny_models / "models/VAE/tiny-vae.safetensors"
    vae = load_vae(ModelEntry(Kind.VAE, "tiny-vae", path, Format.SAFETENSORS, "tiny-vae"))
    from dreamwire.backend.tiny import _reseeded_vae

    _assert_same_weights(vae, _reseeded_vae(), "vae")
    assert vae.config.scaling_factor == 0.18215
    entry = ModelEntry(Kind.VAE, "tiny-vae", path, Format.SAFETENSORS, "tiny-vae")
    assert load_vae(entry, for_arch="tiny-sdxl").config.scaling_factor == 0.13025
    image = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        latent = vae.encode(image).latent_dist.mean
    assert latent.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("arch", ["tiny-sd1", "tiny-sdxl"])
def test_tiny_pipelines_generate(tiny_models, arch):
    name = f"{arch}.safetensors"
    pipe = load_pipeline(_checkpoint(tiny_models, name, arch))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt="a cat", num_inference_steps=1, height=64, width=64, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)


def test_old_text_encoder_key_spelling_still_loads(tiny_models, tmp_path):
    """Checkpoints saved with older transformers lack the `text_model.` level."""
    from safetensors.torch import load_file, save_file

    src = tiny_models / "models/Stable-diffusion/tiny-sd1.safetensors"
    tensors = {
        k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
        for k, v in load_file(str(src)).items()
    }
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path))
    pipe = load_pipeline(ModelEntry(Kind.CHECKPOINT, "old", path, Format.SAFETENSORS, "tiny-sd1"))
    reference = load_pipeline(_checkpoint(tiny_models, "tiny-sd1.safetensors", "tiny-sd1"))
    _assert_same_weights(pipe.text_encoder, reference.text_encoder, "text_encoder")


def test_fp16_variant_folder_and_half_loading(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "fp16-only"
    shutil.copytree(tiny_models / "models/Stable-diffusion/tiny-sd1-diffusers", folder)
    for weights in list(folder.rglob("*.safetensors")):
        weights.rename(weights.with_name(weights.stem + ".fp16.safetensors"))
    pipe = load_pipeline(ModelEntry(Kind.CHECKPOINT, "f", folder, Format.DIFFUSERS, "tiny-sd1"))
    reference = load_pipeline(_checkpoint(tiny_models, "tiny-sd1.safetensors", "tiny-sd1"))
    _assert_same_weights(pipe.unet, reference.unet, "unet")
    half = load_pipeline(
        _checkpoint(tiny_models, "tiny-sd1.safetensors", "tiny-sd1"), torch_dtype=torch.float16
    )
    assert {half.unet.dtype, half.vae.dtype, half.text_encoder.dtype} == {torch.float16}
