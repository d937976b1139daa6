"""Qwen-Image files in ComfyUI's layout are found and told apart from their headers: the
transformer (Qwen-Image / Edit / Edit-2509 by name where the keys are the same; Layered and
Edit-2511 by their own keys), Qwen2.5-VL in text_encoders, the Wan-layout VAE (RGBA for
Layered). test_qwen_comfy.py loads them."""

from __future__ import annotations

import pytest

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Kind
from dreamwire.backend.tiny.files import save_tensors, state_of


@pytest.fixture(scope="module")
def comfy_root(tmp_path_factory, qwen_parts):
    import torch

    root = tmp_path_factory.mktemp("qwen-comfy")
    models = root / "models"
    transformer = state_of(qwen_parts["transformer"])
    dm = models / "diffusion_models"
    save_tensors(transformer, dm / "qwen_image_fp8_e4m3fn.safetensors")
    prefixed = {"model.diffusion_model." + k: v for k, v in transformer.items()}
    save_tensors(prefixed, dm / "qwen_image_edit_fp8_e4m3fn.safetensors")
    save_tensors(transformer, dm / "Qwen-Image-Edit-2509-Q4_K_M-like.safetensors")
    marker = {"__index_timestep_zero__": torch.zeros(1)}
    save_tensors(transformer | marker, dm / "qwen_image_edit_2511_bf16.safetensors")
    layered = {"time_text_embed.addition_t_embedding.weight": torch.zeros(2, 4)}
    save_tensors(transformer | layered, dm / "some_qwen_model.safetensors")
    # Qwen2.5-VL in Hugging Face's original names, as ComfyUI ships it.
    text = {
        k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v
        for k, v in state_of(qwen_parts["text_encoder"]).items()
        if not k.startswith("lm_head.")
    }
    save_tensors(text, models / "text_encoders" / "qwen_2.5_vl_7b.safetensors")
    save_tensors(state_of(qwen_parts["vae"]), models / "vae" / "qwen_image_vae.safetensors")
    conv = {"encoder.conv1.weight": torch.zeros(8, 4, 3, 3, 3)}
    save_tensors(conv, models / "vae" / "qwen_image_layered_vae.safetensors")
    return root


def test_comfy_files_are_identified(comfy_root):
    library = ModelLibrary([comfy_root])
    arch = {e.name: e.arch for e in library.entries(Kind.CHECKPOINT)}
    assert arch["qwen_image_fp8_e4m3fn"] == "tiny-qwen-image"
    assert arch["qwen_image_edit_fp8_e4m3fn"] == "tiny-qwen-image-edit"
    entries = {e.name: e for e in library.entries(Kind.CHECKPOINT)}
    assert entries["qwen_image_edit_fp8_e4m3fn"].detail["transformer_prefix"] == (
        "model.diffusion_model."
    )
    variants = {name: e.detail["variant"] for name, e in entries.items()}
    assert variants["qwen_image_fp8_e4m3fn"] == ""
    assert variants["Qwen-Image-Edit-2509-Q4_K_M-like"] == "edit-2509"
    assert entries["qwen_image_edit_2511_bf16"].detail["told_by"] == "keys"
    assert variants["some_qwen_model"] == "layered"  # by its keys, whatever its name
    assert {e.arch for e in library.entries(Kind.TEXT_ENCODER)} == {"tiny-qwen2.5-vl"}
    assert {e.name: e.arch for e in library.entries(Kind.VAE)} == {
        "qwen_image_vae": "tiny-qwen-image-vae",
        "qwen_image_layered_vae": "tiny-qwen-image-vae-rgba",
    }


@pytest.mark.parametrize("arch", ["qwen-image", "tiny-qwen-image"])
def test_wan_vae_names_map_at_any_depth_as_diffusers_does(arch):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLQwenImage
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    from dreamwire.backend.library.flux_loading import component_config
    from dreamwire.backend.library.wan_vae_layout import wan_to_diffusers
    from dreamwire.backend.tiny.qwen_image import wan_vae_names

    with init_empty_weights():
        vae = AutoencoderKLQwenImage.from_config(component_config(arch, "vae"))
    names = {k: k for k in vae.state_dict()}  # each key's value: its diffusers name
    wan = wan_vae_names(names, vae.config.num_res_blocks)
    assert "encoder.conv1.weight" in wan and "decoder.head.2.weight" in wan
    assert wan_to_diffusers(wan) == {k: k for k in names.values()}
    if arch == "qwen-image":
        # diffusers' converter hard-codes the real depth: the two agree there.
        assert convert_wan_vae_to_diffusers(dict(wan)) == wan_to_diffusers(wan)


def test_a_gguf_qwen25_vl_is_listed_and_refused_by_name(tmp_path):
    """llama.cpp's Qwen2.5-VL GGUF (architecture qwen2vl): transformers cannot load it, so
    it is named with the file to use instead, not left unidentified."""
    import torch

    from dreamwire.backend.library.qwen_identify import QWEN_VL_GGUF
    from dreamwire.backend.tiny.flux_files import write_gguf

    folder = tmp_path / "models" / "text_encoders"
    llama_names = {"token_embd.weight": torch.zeros(64, 32), "blk.0.attn_k.bias": torch.zeros(32)}
    write_gguf(llama_names, folder / "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", "qwen2vl", "Q8_0")
    write_gguf(llama_names, folder / "some-llama-Q8_0.gguf", "llama", "Q8_0")
    found = {e.name: e for e in ModelLibrary([tmp_path]).entries(Kind.TEXT_ENCODER)}
    qwen = found["Qwen2.5-VL-7B-Instruct-Q4_K_M"]
    assert qwen.arch == QWEN_VL_GGUF and qwen.detail["error_code"] == "model_unsupported"
    assert "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf" in qwen.detail["error"]
    assert "qwen_2.5_vl_7b.safetensors" in qwen.detail["error"]
    assert "error" not in found["some-llama-Q8_0"].detail  # another GGUF LLM: not refused
