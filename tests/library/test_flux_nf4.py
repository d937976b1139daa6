"""Forge's bitsandbytes NF4 Flux checkpoints load, expanded by Dreamwire's own NF4 decoder.

The files are written by bitsandbytes itself (its CPU quantize_4bit, from bf16, blocks of
64), with double-quantized scales (flux1-dev-bnb-nf4) and without (-v2). The decoder must
give exactly what bitsandbytes' dequantize_4bit gives (same float32 products); the picture
differs from the fp32 original's by NF4's rounding (4 bits a weight)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from tests.support.flux_pictures import flux_picture_255

bnb = pytest.importorskip("bitsandbytes.functional")

FILES = {"flux1-dev-bnb-nf4": True, "flux1-dev-bnb-nf4-v2": False}  # name: nested scales


def _bnb_dequantized(tensors: dict, name: str) -> torch.Tensor:
    """bitsandbytes' own reading of the weight `name` as Forge's loader does it."""
    stats = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
    state = bnb.QuantState.from_dict(stats, device=torch.device("cpu"))
    return bnb.dequantize_4bit(tensors[name], state).float()


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "v2"])
def test_decoder_equals_bitsandbytes(nested):
    from dreamwire.backend.library.nf4 import NF4_CODE, expand_nf4

    torch.manual_seed(3)
    # A short last block (300 x 7 = 2100 = 32 blocks of 64 + 52) and more than one nested
    # block of scales (1536 x 256 / 64 = 6144 scales, 24 nested blocks of 256).
    for shape in ((300, 7), (1536, 256)):
        weight = torch.randn(shape).to(torch.bfloat16)
        packed, state = bnb.quantize_4bit(
            weight, blocksize=64, quant_type="nf4", compress_statistics=nested
        )
        tensors = {"w.weight": packed, "w.bias": torch.ones(shape[0])}
        tensors |= {f"w.weight.{k}": v for k, v in state.as_dict(packed=True).items()}
        assert ("w.weight.nested_absmax" in tensors) == nested
        expanded = expand_nf4(tensors, "test.safetensors")
        assert set(expanded) == {"w.weight", "w.bias"}  # the statistics are gone
        ours = expanded["w.weight"]
        assert ours.dtype == torch.bfloat16 and tuple(ours.shape) == shape
        assert torch.equal(ours.float(), _bnb_dequantized(tensors, "w.weight"))
        assert torch.equal(torch.tensor(NF4_CODE), state.code.float())
        # And it is the weight, to 4 bits: within a step of NF4's widest gap (0.30) times
        # the block's largest magnitude.
        assert (ours - weight.float()).abs().max() <= 0.31 * weight.float().abs().max()


def test_a_broken_nf4_weight_is_one_clear_error():
    from dreamwire.backend.library.nf4 import expand_nf4
    from dreamwire.shared.errors import DreamwireError, ErrorCode

    packed, state = bnb.quantize_4bit(torch.randn(64, 64), blocksize=64, quant_type="nf4")
    tensors = {"w.weight": packed} | {
        f"w.weight.{k}": v for k, v in state.as_dict(packed=True).items() if k != "absmax"
    }
    with pytest.raises(DreamwireError) as err:
        expand_nf4(tensors, "flux1-dev-bnb-nf4.safetensors")
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    assert "flux1-dev-bnb-nf4.safetensors" in err.value.message and "w.weight" in err.value.message


@pytest.fixture(scope="module")
def forge(flux_trees, tmp_path_factory):
    """A Forge install with the fp32 all-in-one and the two NF4 checkpoints of it."""
    from dreamwire.backend.tiny.flux_files import write_bnb_nf4_checkpoint

    root = tmp_path_factory.mktemp("forge-nf4")
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(flux_trees.comfy / "models/checkpoints/flux1-dev-aio.safetensors", models)
    for name, nested in FILES.items():
        write_bnb_nf4_checkpoint(flux_trees.parts, models / f"{name}.safetensors", nested)
    tokenizer = "backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2"
    shutil.copytree(flux_trees.forge / tokenizer, root / tokenizer)
    return root


@pytest.fixture(scope="module")
def engine(forge):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    return Engine(ModelLibrary([forge]), device="cpu", extensions=[], cache_size=1)


def test_nf4_checkpoints_are_identified_and_counted_expanded(engine):
    from dreamwire.backend.engine import library_adapter as libs
    from dreamwire.backend.library.sizes import NF4_EXPANDED

    welcome = engine.capabilities()
    for name in FILES:
        entry = engine.library.find("checkpoint", name)
        assert (entry.arch, entry.detail["nf4"], entry.detail["all_in_one"]) == (
            "tiny-flux",
            True,
            True,
        )
        assert welcome["model_weights"][name] == NF4_EXPANDED
        assert name not in welcome["model_missing"]
        # Loaded expanded: as many weights, at full precision, as the fp32 original.
        original = engine.library.find("checkpoint", "flux1-dev-aio")
        assert libs.params(entry) == libs.params(original)
        assert libs.weights(entry).key == "fp16"


# Mean |difference| from the fp32 original's picture (0..255) allowed: about 2x what the
# tiny model measures (2.92; bench/RESULTS.md). NF4 packs every matrix, the input
# embedders and the final layer too, where GGUF keeps those at F32.
IMAGE_MEAN = 6.0


def test_nf4_checkpoints_load_as_bitsandbytes_reads_them(engine, forge, flux_trees, caplog):
    from safetensors.torch import load_file

    from dreamwire.backend.library import flux_layout
    from dreamwire.backend.library.flux_loading import config_arch, load_transformer
    from dreamwire.backend.library.flux_parts import Part

    original = flux_trees.parts["transformer"].state_dict()
    for name in FILES:
        tensors = load_file(forge / f"models/Stable-diffusion/{name}.safetensors")
        entry = engine.library.find("checkpoint", name)
        part = Part(entry, entry.detail["transformer_prefix"])
        with caplog.at_level(logging.WARNING):
            transformer = load_transformer(part, config_arch(entry.arch), torch.float32)
        told = [r.getMessage() for r in caplog.records if "no memory saving" in r.getMessage()]
        assert any(name in text and "NF4" in text for text in told), told
        loaded = transformer.state_dict()
        # Every matrix is bitsandbytes' own dequantization of the file (bf16, the dtype
        # Forge's files were quantized from, then the engine's float32); the rest (norms,
        # biases) the original's values.
        matrices = 0
        for key, value in flux_layout.diffusers_to_bfl(loaded).items():
            stored = flux_layout.COMFY_TRANSFORMER + key
            assert value.dtype == torch.float32, key
            if stored + ".quant_state.bitsandbytes__nf4" in tensors:
                assert torch.equal(value, _bnb_dequantized(tensors, stored)), key
                matrices += 1
        assert matrices == sum(k.endswith(".quant_state.bitsandbytes__nf4") for k in tensors)
        assert matrices > 0
        assert all(torch.equal(loaded[k], v) for k, v in original.items() if v.ndim == 1)
    # The picture once: -v2's transformer in the fp32 original's pipeline (the T5 stays
    # the original's fp32 one). The first file differs only by its scales' 8-bit codes.
    pipe = engine.library.load_pipeline("flux1-dev-aio")
    reference = flux_picture_255(pipe)
    pipe.transformer = transformer
    difference = np.abs(flux_picture_255(pipe) - reference).mean()
    assert difference <= IMAGE_MEAN, difference
