"""GGUF K-quant Flux files (city96's Q6_K, Q5_K_S, Q4_K_S, Q3_K_S, Q2_K) are identified,
loaded with their matrices kept packed, and generate close to the fp32 original.

The `gguf` package cannot write K-quants, so backend/tiny/gguf_kquants.py does; its bytes
are checked first against two independent decoders (gguf-py's numpy one and diffusers' torch
one, which the loader uses). A K-quant stores each sub-block as d*sc*q (- dmin*m), so every
weight decodes within one quantization step of its 256-weight super-block: the block's range
over the code's levels (Q2_K 3, Q4_K 15, Q5_K 31; with the minimum kept at or below 0) or
its largest magnitude over the largest signed code (Q3_K 3, Q6_K 31)."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pytest
import torch

from dreamwire.backend.tiny.gguf_kquants import BLOCK_BYTES, QK_K, quantize_k
from tests.support.flux_pictures import flux_picture_255

# type: (levels, symmetric)
STEPS = {"Q2_K": (3, False), "Q3_K": (3, True), "Q4_K": (15, False), "Q5_K": (31, False)}
STEPS["Q6_K"] = (31, True)
# The mixes city96 publishes, and the ggml type each is named after.
MIXES = {"Q6_K": "Q6_K", "Q5_K_S": "Q5_K", "Q4_K_S": "Q4_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K"}


def _weights_like_a_layer() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((24, 3 * QK_K)) * 0.05).astype(np.float32)
    x[1] = np.abs(x[1])  # all positive: the minimum is clamped at 0
    x[2] = -np.abs(x[2]) - 0.3  # all negative, far from 0
    x[3] = 0.0  # an empty block: zero scales must not divide by zero
    x[4, :QK_K] *= 40  # one loud block beside quiet ones
    x[5, 7] = 1.5  # an outlier in one sub-block
    return x


def _one_step(x: np.ndarray, qtype: str) -> np.ndarray:
    """Each super-block's quantization step, repeated for its weights."""
    levels, symmetric = STEPS[qtype]
    blocks = x.reshape(-1, QK_K)
    if symmetric:
        step = np.abs(blocks).max(axis=1) / levels
    else:
        step = (blocks.max(axis=1) - np.minimum(blocks.min(axis=1), 0)) / levels
    return np.repeat(step, QK_K).reshape(x.shape)


@pytest.mark.parametrize("qtype", sorted(BLOCK_BYTES))
def test_k_blocks_decode_with_gguf_py_within_one_step(qtype):
    import gguf

    x = _weights_like_a_layer()
    packed = quantize_k(x, qtype)
    kind = getattr(gguf.GGMLQuantizationType, qtype)
    assert packed.dtype == np.uint8
    assert packed.shape == gguf.quants.quant_shape_to_byte_shape(x.shape, kind)
    decoded = gguf.quants.dequantize(packed, kind)
    error = np.abs(decoded - x)
    assert np.all(error <= _one_step(x, qtype) * 1.01 + 1e-7)
    assert np.all(decoded[3] == 0)
    # Not the trivial decode: most weights are much closer than a step.
    assert error.mean() < 0.5 * _one_step(x, qtype).mean()


@pytest.mark.parametrize("qtype", sorted(BLOCK_BYTES))
def test_diffusers_decodes_k_blocks_as_gguf_py_does(qtype):
    import gguf
    from diffusers.quantizers.gguf.utils import (
        GGUFParameter,
        dequantize_functions,
        dequantize_gguf_tensor,
    )

    x = _weights_like_a_layer()
    packed = quantize_k(x, qtype)
    kind = getattr(gguf.GGMLQuantizationType, qtype)
    reference = gguf.quants.dequantize(packed, kind)
    blocks = torch.from_numpy(packed).reshape(-1, BLOCK_BYTES[qtype])
    exact = dequantize_functions[kind](blocks, QK_K, BLOCK_BYTES[qtype], dtype=torch.float32)
    np.testing.assert_allclose(exact.reshape(x.shape).numpy(), reference, rtol=1e-6, atol=1e-7)
    # The loader's own call computes in fp16 (the scales are f16): equal up to fp16's
    # rounding of d*sc, of its product with q and of dmin*m (each term at most three times
    # the row's largest weight, each rounding 2^-11 of it).
    loaded = dequantize_gguf_tensor(GGUFParameter(torch.from_numpy(packed), quant_type=kind))
    assert tuple(loaded.shape) == x.shape
    tolerance = 2**-7 * np.abs(reference).max(axis=1, keepdims=True) + 1e-6
    assert np.all(np.abs(loaded.float().numpy() - reference) <= tolerance)


def test_rows_narrower_than_a_super_block_are_refused():
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize_k(np.zeros((4, 128), np.float32), "Q4_K")


@pytest.fixture(scope="module")
def kquant_root(flux_trees, tmp_path_factory):
    """A ComfyUI install with a 256-wide tiny Flux as fp32 BFL and as each K mix."""
    from dreamwire.backend.tiny import flux_files
    from dreamwire.backend.tiny.flux import flux_wide_transformer

    root = tmp_path_factory.mktemp("flux-kquants") / "ComfyUI"
    transformers = {"unet", "diffusion_models", "checkpoints"}
    shutil.copytree(
        flux_trees.comfy, root, ignore=lambda _d, n: [x for x in n if x in transformers]
    )
    wide = flux_wide_transformer()
    unet = root / "models" / "unet"
    flux_files.write_bfl_transformer(wide, unet / "flux1-dev-wide.safetensors")
    for mix in MIXES:
        flux_files.write_gguf_transformer(wide, unet / f"flux1-dev-wide-{mix}.gguf", mix)
    return root, wide


@pytest.fixture(scope="module")
def engine(kquant_root):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    return Engine(ModelLibrary([kquant_root[0]]), device="cpu", extensions=[], cache_size=1)


def test_k_quant_files_are_identified_with_their_type(kquant_root, engine):
    from dreamwire.backend.cli import main

    welcome = engine.capabilities()
    for mix, kind in MIXES.items():
        name = f"flux1-dev-wide-{mix}"
        assert welcome["model_families"][name] == "flux"
        assert welcome["model_weights"][name] == f"GGUF {kind}"
        assert name not in welcome["model_missing"]
    assert "flux1-dev-wide" not in welcome["model_weights"]  # fp32: nothing to say
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models", "list", "--models", str(kquant_root[0])]) == 0
    lines = [ln for ln in out.getvalue().splitlines() if "flux1-dev-wide-Q4_K_S" in ln]
    assert len(lines) == 1 and "(gguf, tiny-flux)  stored as GGUF Q4_K" in lines[0], lines


def _weights(module) -> dict[str, torch.Tensor]:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    return {
        name: (dequantize_gguf_tensor(t) if isinstance(t, GGUFParameter) else t).float()
        for name, t in module.state_dict().items()
    }


# Mean |difference| from the fp32 original's picture, 0..255, allowed per mix: 3-5x what
# this model measures (0.031, 0.060, 0.129, 0.312, 0.597; bench/RESULTS.md).
IMAGE_MEAN = {"Q6_K": 0.15, "Q5_K_S": 0.25, "Q4_K_S": 0.5, "Q3_K_S": 1.0, "Q2_K": 2.0}


def test_k_quant_transformers_stay_packed_and_generate_close(kquant_root, engine):
    from diffusers.quantizers.gguf.utils import GGUFParameter

    from dreamwire.backend.library.flux_loading import config_arch, load_transformer
    from dreamwire.backend.library.flux_parts import Part

    original = _weights(kquant_root[1])
    # One pipeline (the fp32 file, with the library's CLIP, T5 and VAE); each K file's
    # transformer is loaded by the library's own loader and takes the fp32 one's place.
    pipe = engine.library.load_pipeline("flux1-dev-wide")
    reference = flux_picture_255(pipe)
    assert reference.std() > 0
    for mix, kind in MIXES.items():
        entry = engine.library.find("checkpoint", f"flux1-dev-wide-{mix}")
        pipe.transformer = load_transformer(Part(entry), config_arch(entry.arch), torch.float32)
        packed = [p for p in pipe.transformer.parameters() if isinstance(p, GGUFParameter)]
        # The K matrices stay packed, the modulation layers at Q8_0 as the file has them.
        assert {p.quant_type.name for p in packed} == {kind, "Q8_0"}, mix
        loaded = _weights(pipe.transformer)
        levels, symmetric = STEPS[kind]
        bound = (1 if symmetric else 2) / levels
        for key, weight in original.items():
            error = ((loaded[key] - weight).abs().max() / weight.abs().max()).item()
            assert error <= bound * 1.01, (mix, key, error)
        difference = np.abs(flux_picture_255(pipe) - reference).mean()
        assert difference <= IMAGE_MEAN[mix], (mix, difference)
