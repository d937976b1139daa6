"""Qwen3 text encoders in GGUF (ComfyUI's text_encoders/qwen_3_4b-Q8_0.gguf as llama.cpp
converts them, llama.cpp's tensor names): found, identified as Qwen3, loaded, and giving
the prompt embedding of the unquantized encoder within Q8_0's error; a quantization that
cannot be unpacked is refused naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

PROMPT = "a cat sitting on a red chair"
# Q8_0 keeps 8 bits per weight with one scale per 32: the second-to-last hidden states of
# the 28-layer tiny encoder stay within 1 % of the full-precision ones (measured 0.9 %,
# relative L2); 3 % leaves room and still fails on a misnamed or transposed tensor.
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def gguf_root(zimage_tree, tmp_path_factory):
    from dreamwire.backend.tiny import zimage

    root = tmp_path_factory.mktemp("zimage-gguf-text") / "ComfyUI"
    folder = root / "models" / "text_encoders"
    zimage.write_qwen3_gguf(zimage_tree.parts["text_encoder"], folder / "qwen_3_4b-Q8_0.gguf")
    return root


def _entry(root, name):
    from dreamwire.backend.library import Kind, ModelLibrary

    (entry,) = [e for e in ModelLibrary([root]).entries(Kind.TEXT_ENCODER) if e.name == name]
    return entry


def test_a_gguf_qwen3_is_found_loaded_and_embeds_the_prompt_as_the_full_one(zimage_tree, gguf_root):
    from dreamwire.backend import qwen3_encoding
    from dreamwire.backend.families.zimage import ZIMAGE
    from dreamwire.backend.library.entries import Format
    from dreamwire.backend.library.flux_parts import Part
    from dreamwire.backend.library.qwen_tokenizer import load_qwen_tokenizer
    from dreamwire.backend.library.zimage_loading import load_text_encoder

    entry = _entry(gguf_root, "qwen_3_4b-Q8_0")
    assert (entry.format, entry.arch) == (Format.GGUF, "tiny-qwen3")
    encoder = load_text_encoder(Part(entry), "tiny-zimage", torch.float32)
    tokenizer = load_qwen_tokenizer(zimage_tree.files["tokenizer"])

    def embed(text_encoder) -> np.ndarray:
        pipe = type("Pipe", (), {"text_encoder": text_encoder, "tokenizer": tokenizer})
        with torch.inference_mode():
            return qwen3_encoding.encode(pipe, PROMPT, ZIMAGE.chat_text).numpy()

    full, quantized = embed(zimage_tree.parts["text_encoder"]), embed(encoder)
    assert full.shape == quantized.shape
    error = np.linalg.norm(quantized - full) / np.linalg.norm(full)
    assert 0 < error < TOLERANCE, error


def test_a_quantization_that_cannot_be_unpacked_is_refused_naming_the_file(tmp_path):
    """MXFP4 (gpt-oss's type) is read by the gguf package but not unpacked by diffusers."""
    import gguf

    from dreamwire.backend.library.flux_parts import Part
    from dreamwire.backend.library.zimage_loading import load_text_encoder

    path = tmp_path / "models" / "text_encoders" / "qwen_3_4b-MXFP4.gguf"
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(path=None, arch="qwen3")
    rows = np.random.default_rng(0).random((600, 32), dtype=np.float32)
    mxfp4 = gguf.GGMLQuantizationType.MXFP4
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(rows, mxfp4), raw_dtype=mxfp4)
    writer.add_tensor("blk.0.attn_q_norm.weight", np.ones(16, np.float32))
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    entry = _entry(tmp_path, "qwen_3_4b-MXFP4")
    assert entry.arch == "tiny-qwen3"
    with pytest.raises(DreamwireError) as err:
        load_text_encoder(Part(entry), "tiny-zimage", torch.float32)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert path.name in err.value.message
