"""Qwen-Image as ComfyUI users have it (transformer in models/diffusion_models, Qwen2.5-VL
in Hugging Face's original names without its LM head, the Wan-layout VAE, the tokenizer in
comfy/text_encoders/qwen25_tokenizer/) runs, and its picture is the diffusers folder's bit
for bit; a missing part is named in one model_part_missing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Format, Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from tests.qwen.reference import BASE, PROMPT
from tests.support.tokenizers import only_tree_tokenizers


@dataclass(frozen=True)
class ComfyTree:
    parts: dict
    root: Path


@pytest.fixture(autouse=True)
def no_outside_tokenizer(monkeypatch, tmp_path_factory):
    """Only the tree's tokenizer: none from the environment or this machine's hub cache."""
    only_tree_tokenizers(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def tree(tmp_path_factory, qwen_parts) -> ComfyTree:
    from dreamwire.backend.tiny.files import save_tensors, state_of
    from dreamwire.backend.tiny.qwen_image import (
        build_comfy_tree,
        write_gguf_transformer,
        write_qwen_diffusers_folder,
    )

    root = tmp_path_factory.mktemp("qwen-comfy-tree") / "ComfyUI"
    files = build_comfy_tree(root, qwen_parts)
    # The fp8 file ComfyUI's template names (qwen_image_fp8_e4m3fn.safetensors).
    fp8 = {
        k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v
        for k, v in state_of(qwen_parts["transformer"]).items()
    }
    save_tensors(fp8, files["transformer"].with_name("qwen_image_fp8_e4m3fn.safetensors"))
    # city96's GGUF files, where ComfyUI-GGUF's Unet Loader reads them.
    for qtype in GGUF_TYPES:
        write_gguf_transformer(
            qwen_parts["transformer"], root / "models" / "unet" / f"qwen-image-{qtype}.gguf", qtype
        )
    write_qwen_diffusers_folder(qwen_parts, root / "models" / "diffusers" / "tiny-qwen-image")
    return ComfyTree(qwen_parts, root)


# A GGUF picture's largest step from the unquantized one's (8-bit levels): the tiny model
# measured 1 (Q8_0) and 4 (Q4_0) on this machine; twice that is the bound (Q4_0's tested).
GGUF_TYPES = {"Q8_0": 2, "Q4_0": 8}


@pytest.fixture(scope="module")
def library(tree):
    return ModelLibrary([tree.root])


def _state(module) -> dict:
    return {k: v.detach() for k, v in module.state_dict().items()}


def test_comfy_files_load_the_original_weights(tree, library):
    found = {(e.kind, e.name): e for e in library.entries()}
    for name in ("qwen_image_bf16", "qwen_image_comfy", "qwen_image_fp8_e4m3fn"):
        entry = found[(Kind.CHECKPOINT, name)]
        assert (entry.format, entry.arch) == (Format.SAFETENSORS, "tiny-qwen-image"), name
    assert library.missing_parts() == {}
    pipe = library.load_pipeline("qwen_image_comfy")
    assert type(pipe).__name__ == "QwenImagePipeline"
    for name in ("transformer", "text_encoder", "vae"):
        got, want = _state(getattr(pipe, name)), _state(tree.parts[name])
        assert got.keys() == want.keys(), name
        # The file has no LM head (ComfyUI's): it stands in with the embedding, unused.
        same = [k for k in want if k != "lm_head.weight" and not torch.equal(got[k], want[k])]
        assert same == [], name
    # The fp8 copy stays fp8 in memory (diffusers' layerwise casting upcasts per layer).
    fp8 = library.load_pipeline("qwen_image_fp8_e4m3fn").transformer
    assert fp8.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn


def test_the_comfy_files_picture_is_the_diffusers_folders(library):
    from dreamwire.backend.engine import Engine

    engine = Engine(library, device="cpu", extensions=[], cache_size=1)

    def picture(model: str) -> np.ndarray:
        job = Job(**{"model": model, "prompt": PROMPT, **BASE})
        return engine.run(job).images[0].image

    single = picture("qwen_image_bf16")
    assert np.array_equal(single, picture("tiny-qwen-image"))


def test_gguf_transformers_stay_quantized_and_draw_the_same_picture(tree, library):
    from diffusers.quantizers.gguf.utils import GGUFParameter

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library.flux_parts import Part
    from dreamwire.backend.library.qwen_loading import load_transformer

    found = {e.name: e for e in library.entries(Kind.CHECKPOINT)}
    for qtype in GGUF_TYPES:
        entry = found[f"qwen-image-{qtype}"]
        assert (entry.format, entry.arch) == (Format.GGUF, "tiny-qwen-image")
        transformer = load_transformer(Part(entry), entry.arch, torch.float32)
        weight = transformer.transformer_blocks[0].attn.to_q.weight
        assert isinstance(weight, GGUFParameter) and weight.quant_type.name == qtype
    # The coarsest one through the engine: a picture close to the unquantized file's.
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)

    def picture(model: str) -> np.ndarray:
        job = Job(**{"model": model, "prompt": PROMPT, **BASE})
        return engine.run(job).images[0].image.astype(int)

    step = int(np.abs(picture("qwen-image-Q4_0") - picture("qwen_image_bf16")).max())
    assert 0 < step <= GGUF_TYPES["Q4_0"], step  # 4-bit weights change it a little


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        (("qwen_2.5_vl_7b.safetensors",), ["qwen_2.5_vl_7b.safetensors", "models/text_encoders"]),
        (("qwen_image_vae.safetensors",), ["qwen_image_vae.safetensors", "models/vae"]),
        (("qwen25_tokenizer",), ["DREAMWIRE_QWEN_TOKENIZER", "qwen25_tokenizer"]),
    ],
)
def test_a_missing_part_is_named(tree, tmp_path, removed, named):
    # Without the diffusers folder, whose parts would otherwise stand in (its tokenizer).
    root = tmp_path / "ComfyUI"
    shutil.copytree(
        tree.root, root, ignore=lambda _d, found: [n for n in found if n in {"diffusers", *removed}]
    )
    library = ModelLibrary([root])
    message = library.missing_parts()["qwen_image_bf16"]
    assert all(n in message for n in named), message
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline("qwen_image_bf16")
    assert err.value.code == ErrorCode.MODEL_PART_MISSING
    assert "Qwen-Image" in err.value.message
