"""The engine runs Flux jobs from the single files artists have, like from a diffusers folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dreamwire.shared.job import Job


@pytest.fixture(scope="module")
def engine(flux_trees, tmp_path_factory):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny.flux import write_flux_diffusers_folder

    root = tmp_path_factory.mktemp("flux-engine") / "ComfyUI"
    shutil.copytree(flux_trees.comfy, root)
    write_flux_diffusers_folder(flux_trees.parts, root / "models/checkpoints/tiny-flux")
    return Engine(ModelLibrary([root]), device="cpu", extensions=[], cache_size=1)


# Flux's own settings (Euler, CFG 1); two steps are enough to carry every weight's effect.
SETTINGS = {"sampler": "Euler", "cfg": 1.0, "steps": 2, "width": 64, "height": 64, "seed": 5}


def _image(engine, model: str) -> np.ndarray:
    job = Job(model=model, prompt="a cat on a red chair", **SETTINGS)
    return engine.run(job).images[0].image.astype(int)


def test_single_files_generate_what_the_diffusers_folder_does(engine):
    reference = _image(engine, "tiny-flux")
    assert reference.std() > 0
    # fp32 all-in-one: the same weights, loaded another way (float rounding at most).
    assert np.abs(_image(engine, "flux1-dev-aio") - reference).max() <= 1
    # Quantized transformers with the library's fp16 T5: close, not equal (measured on
    # the tiny model, 0..255 pixels: Q8_0 mean 0.02, Q4_0 mean 0.27, fp8 mean 0.86).
    for model, mean in (("flux1-dev-Q8_0", 0.2), ("flux1-dev-Q4_0", 1.5), ("flux1-dev-fp8", 3)):
        assert np.abs(_image(engine, model) - reference).mean() <= mean, model
    # The engine keeps the stored formats it was given: fp8 matrices stay fp8 in memory.
    fp8 = engine.load("flux1-dev-fp8").components["transformer"]
    assert fp8.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn


def test_welcome_names_what_a_flux_file_lacks(flux_trees, tmp_path):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    root = tmp_path / "ComfyUI"
    drop = ("flux1-dev-aio.safetensors", "t5xxl_fp16.safetensors", "t5-v1_1-xxl-encoder-Q8_0.gguf")
    shutil.copytree(
        flux_trees.comfy, root, ignore=lambda _d, names: [n for n in names if n in drop]
    )
    welcome = Engine(ModelLibrary([root]), device="cpu", extensions=[]).capabilities()
    missing = welcome["model_missing"]
    # Every transformer file lacks the T5, and says where to put one; nothing else is listed.
    assert set(missing) == {"flux1-dev", "flux1-dev-fp8", "flux1-dev-Q8_0", "flux1-dev-Q4_0"}
    assert all(
        "t5xxl_fp16.safetensors" in text and "models/text_encoders" in text
        for text in missing.values()
    )
    assert "ae.safetensors" not in missing["flux1-dev"]
    assert welcome["model_families"]["flux1-dev"] == "flux"


def test_a_lora_on_a_quantized_transformer_is_refused_by_name(engine):
    # Adding a LoRA's delta in place to fp8 or GGUF weights would round it away or corrupt
    # the packed blocks: refused before any weight changes, naming the way out.
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.shared.errors import DreamwireError, ErrorCode

    engine.extensions = engine_extensions()
    try:
        for model in ("flux1-dev-Q8_0", "flux1-dev-fp8"):
            job = Job(model=model, prompt="a cat <lora:any_style:0.8>", **SETTINGS)
            with pytest.raises(DreamwireError) as err:
                engine.run(job)
            assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
            assert "stored quantized" in err.value.message and model in err.value.message
    finally:
        engine.extensions = []
