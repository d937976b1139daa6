"""The engine runs prompts through backend/text_encoding.py: A1111 weights and textual
inversion names reach the image."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.shared.job import Job
from tests.support.engines import cpu_engine


@pytest.fixture(scope="module")
def engine(tiny_models, tmp_path_factory):
    from safetensors.torch import save_file

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    extra = tmp_path_factory.mktemp("emb-root")
    (extra / "models" / "embeddings").mkdir(parents=True)
    probe = Engine(ModelLibrary([tiny_models]), device="cpu", extensions=[], cache_size=1)
    comps = probe.load("tiny-sd1").components
    ids = comps["tokenizer"]("red fox", add_special_tokens=False)["input_ids"]
    vectors = comps["text_encoder"].get_input_embeddings().weight[ids].detach().clone()
    save_file(
        {"emb_params": vectors}, str(extra / "models" / "embeddings" / "zzfoxemb.safetensors")
    )
    return cpu_engine(tiny_models, extra)


def _run(engine, prompt: str) -> np.ndarray:
    job = Job(
        prompt=prompt, negative="blurry", steps=2, sampler="Euler", width=64, height=64, seed=5
    )
    return engine.run(job).images[0].image.astype(np.int16)


def test_embedding_name_and_weights_reach_the_image(engine):
    fox = _run(engine, "a red fox in snow")
    assert np.array_equal(_run(engine, "a zzfoxemb in snow"), fox)
    assert np.abs(_run(engine, "a (red:1.6) fox in snow") - fox).max() > 0
    assert np.abs(_run(engine, "a cat in snow") - fox).max() > 0
