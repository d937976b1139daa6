"""Flux.2 Klein with its Qwen3 text encoder in GGUF (ComfyUI's text_encoders/
qwen_3_4b-*.gguf, llama.cpp's names, as for Z-Image): an unquantized (F32) file gives the
safetensors encoder's picture bit for bit; a Q8_0 file gives Klein's prompt embedding (hidden
states 9, 18 and 27) within Q8_0's error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.shared.job import Job

PROMPT = "a cat sitting on a red chair"
SINGLE = "flux-2-klein-4b"
# Q8_0 keeps 8 bits per weight with one scale per 32: Klein's hidden states 9, 18 and 27 of
# the tiny encoder stay within 1.3 % of the full-precision ones (measured, relative L2). 3 %
# leaves room and still fails on a misnamed or transposed tensor (tens of %).
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def gguf_root(klein_root, klein_parts, tmp_path_factory):
    """Klein's single files with the text encoder only as GGUF: F32 (the one the pipeline
    picks, as the only file) and, outside the tree, Q8_0."""
    from dreamwire.backend.tiny.zimage import write_qwen3_gguf

    root = tmp_path_factory.mktemp("klein-gguf-text") / "ComfyUI"
    (root / "models").mkdir(parents=True)
    for part in ("diffusion_models", "vae"):
        (root / "models" / part).symlink_to(klein_root / "models" / part)
    (root / "comfy").symlink_to(klein_root / "comfy")
    encoder = klein_parts["text_encoder"].model
    write_qwen3_gguf(encoder, root / "models" / "text_encoders" / "qwen_3_4b-F32.gguf", "F32")
    write_qwen3_gguf(
        encoder, root.parent / "quantized" / "models" / "text_encoders" / "qwen_3_4b-Q8_0.gguf"
    )
    return root


def test_klein_runs_with_an_f32_gguf_text_encoder_as_with_the_safetensors_one(
    klein_engine, gguf_root
):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.library.entries import Format, Kind

    library = ModelLibrary([gguf_root])
    (encoder,) = library.entries(Kind.TEXT_ENCODER)
    assert (encoder.format, encoder.arch) == (Format.GGUF, "tiny-qwen3")
    job = Job(
        model=SINGLE, prompt=PROMPT, sampler="Euler", steps=2, cfg=1.0, width=64, height=64, seed=5
    )
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)
    got = engine.run(job).images[0].image
    assert np.array_equal(got, klein_engine.run(job).images[0].image)


def test_a_q8_gguf_text_encoder_embeds_klein_prompts_as_the_full_one(
    klein_parts, klein_root, gguf_root
):
    from dreamwire.backend import qwen3_encoding
    from dreamwire.backend.families.flux2 import FLUX2
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.library.entries import Kind
    from dreamwire.backend.library.flux_parts import Part
    from dreamwire.backend.library.qwen_tokenizer import load_qwen_tokenizer
    from dreamwire.backend.library.zimage_loading import load_text_encoder

    (entry,) = ModelLibrary([gguf_root.parent / "quantized"]).entries(Kind.TEXT_ENCODER)
    encoder = load_text_encoder(Part(entry), "tiny-flux2", torch.float32)
    tokenizer = load_qwen_tokenizer(klein_root / "comfy" / "text_encoders" / "qwen25_tokenizer")

    def embed(text_encoder) -> np.ndarray:
        with torch.inference_mode():
            view = type("Pipe", (), {"text_encoder": text_encoder, "tokenizer": tokenizer})
            return qwen3_encoding.encode(view, PROMPT, FLUX2.chat_text).numpy()

    full, quantized = embed(klein_parts["text_encoder"].model), embed(encoder)
    assert (
        full.shape == quantized.shape
        and full.shape[-1] == 3 * klein_parts["text_encoder"].config.hidden_size
    )
    error = np.linalg.norm(quantized - full) / np.linalg.norm(full)
    assert 0 < error < TOLERANCE, error
