"""SD3 files found where ComfyUI/Forge keep them, and a model lacking parts named in one
clear error before anything loads."""

from __future__ import annotations

import pytest

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode


def test_the_comfyui_tree_is_found_and_identified(sd3_library):
    arch = {e.name: e.arch for e in sd3_library.entries()}
    assert arch["tiny-sd3"] == "tiny-sd3"  # the diffusers folder
    assert arch["sd3.5_large"] == "tiny-sd3"
    assert arch["sd3.5_large_turbo"] == "tiny-sd3-turbo"  # told by its name
    assert (arch["clip_l"], arch["clip_g"], arch["t5xxl_fp16"]) == (
        "tiny-clip",
        "tiny-clip-g",
        "tiny-t5",
    )
    bundle = sd3_library.find(Kind.CHECKPOINT, "sd3.5_medium_incl_clips_t5xxl")
    assert bundle.detail["sections"] == ["clip_l", "clip_g", "t5", "vae"]
    assert sd3_library.find(Kind.CHECKPOINT, "sd3.5_large").detail["sections"] == ["vae"]
    assert sd3_library.missing_parts() == {}


def test_missing_clip_g_and_t5_are_named_in_one_error(sd3_root, tmp_path):
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "clip").mkdir()
    source = sd3_root / "models"
    (models / "checkpoints" / "sd3.5_large.safetensors").symlink_to(
        source / "checkpoints" / "sd3.5_large.safetensors"
    )
    (models / "clip" / "clip_l.safetensors").symlink_to(source / "clip" / "clip_l.safetensors")
    (tmp_path / "comfy").symlink_to(sd3_root / "comfy")
    library = ModelLibrary([tmp_path])
    message = library.missing_parts()["sd3.5_large"]
    assert "clip_g.safetensors" in message and "t5xxl_fp16.safetensors" in message
    assert "clip_l.safetensors" not in message  # it is there
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline("sd3.5_large")
    assert err.value.code == ErrorCode.MODEL_PART_MISSING


def test_fp8_and_gguf_transformers_stay_small_and_hold_the_weights(sd3_library, sd3_parts):
    import torch
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    want = sd3_parts["transformer"].state_dict()
    assert sd3_library.find(Kind.CHECKPOINT, "sd3.5_large-Q8_0").arch == "tiny-sd3"
    fp8 = sd3_library.load_pipeline("sd3.5_large_fp8_e4m3fn").transformer
    q = fp8.transformer_blocks[0].attn.to_q.weight
    assert q.dtype == torch.float8_e4m3fn  # kept fp8 in memory (layerwise casting)
    exact = want["transformer_blocks.0.attn.to_q.weight"].to(torch.float8_e4m3fn)
    assert torch.equal(q.float(), exact.float())
    gguf = sd3_library.load_pipeline("sd3.5_large-Q8_0").transformer
    weight = gguf.transformer_blocks[0].ff.net[0].proj.weight
    assert isinstance(weight, GGUFParameter)  # kept quantized
    original = want["transformer_blocks.0.ff.net.0.proj.weight"]
    restored = dequantize_gguf_tensor(weight).float()
    assert torch.allclose(restored, original, atol=original.abs().max().item() / 60)


def test_a_gguf_transformer_draws_close_to_the_full_one(sd3_engine):
    import numpy as np

    from dreamwire.shared.job import Job

    base = dict(prompt="a cat", sampler="Euler", steps=1, cfg=1.0, width=64, height=64, seed=3)
    full = sd3_engine.run(Job(model="tiny-sd3", **base)).images[0].image.astype(int)
    q8 = sd3_engine.run(Job(model="sd3.5_large-Q8_0", **base)).images[0].image.astype(int)
    assert 0 < np.abs(full - q8).max() <= 12
