"""Flux.2 Klein LoRAs in ai-toolkit's, diffusers', kohya's and ComfyUI's names patch exactly
what diffusers' own load_lora_weights + fuse_lora gives, restore bit for bit, keep to the
Flux.2 lineage both ways (told from Flux.1's by its layers' widths), and a `<lora:...>` tag
in a Klein job gives diffusers' pipeline over the fused transformer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from tests.support.engines import cpu_engine
from tests.support.lora_reference import fused_transformer, patched_state
from tests.support.pipeline_reference import reference_image

PROMPT = "a cat sitting on a red chair"


@pytest.fixture(scope="module")
def loras(klein_parts, tmp_path_factory) -> dict:
    from dreamwire.backend.tiny.flux2_lora import write_flux2_loras

    folder = tmp_path_factory.mktemp("klein-loras") / "models" / "loras"
    folder.mkdir(parents=True)
    return write_flux2_loras(dict(klein_parts["transformer"].config), folder)


def _patched(parts: dict, path, multiplier: float) -> dict[str, torch.Tensor]:
    return patched_state(parts, path, multiplier, "klein", "flux2")


def _fused(parts: dict, path, scale: float) -> torch.nn.Module:
    return fused_transformer("Flux2KleinPipeline", parts, path, scale)


def test_klein_lora_formats_patch_what_diffusers_fuse_lora_gives(klein_parts, loras):
    transformer = klein_parts["transformer"]
    base = copy.deepcopy(transformer.state_dict())
    got = {n: _patched(klein_parts, p, 0.8) for n, p in loras.items()}
    assert all(torch.equal(v, base[k]) for k, v in transformer.state_dict().items())
    # The ai-toolkit file against its diffusers-named twin: diffusers' ai-toolkit converter
    # leaves the final adaLN's rows in BFL's order (its model converter swaps them).
    for mine, reference in (
        ("aitk", "diffusers"),
        ("diffusers", "diffusers"),
        ("kohya", "kohya"),
        ("comfy", "kohya"),
    ):
        want = _fused(klein_parts, loras[reference], 0.8).state_dict()
        changed = 0
        for k, v in want.items():
            assert torch.equal(got[mine][k], v), (mine, k)
            changed += not torch.equal(v, base[k])
        # q, k, v, both MLPs, both single-block layers, img_in (and modulations).
        assert changed >= 13, (mine, changed)


def _flux1_shaped(tmp_path, width: int):
    """A kohya file of one single block's linear1, at Flux.1's widths (qkv + a 4x MLP)."""
    from dreamwire.backend.tiny.files import save_tensors

    stem = "lora_unet_single_blocks_0_linear1"
    return save_tensors(
        {
            f"{stem}.lora_down.weight": torch.zeros(4, width),
            f"{stem}.lora_up.weight": torch.zeros(7 * width, 4),
            f"{stem}.alpha": torch.tensor(4.0),
        },
        tmp_path / "flux1_style.safetensors",
    )


def test_klein_lora_lineage_both_ways(klein_parts, loras, tmp_path):
    from dreamwire.backend.conditioning import lora
    from dreamwire.backend.tiny.files import save_tensors

    kohya = lora.read(loras["kohya"])
    assert kohya.family == "flux2"
    with pytest.raises(DreamwireError) as err:
        lora.apply([(kohya, 1.0, 1.0)], {}, "flux1-dev", "flux")
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "Flux.2" in err.value.message and "Flux.1" in err.value.message
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    sd_file = save_tensors(
        {
            f"{te}.lora_down.weight": torch.zeros(4, 768),
            f"{te}.lora_up.weight": torch.zeros(768, 4),
        },
        tmp_path / "sd15_style.safetensors",
    )
    flux1 = lora.read(_flux1_shaped(tmp_path, 32))
    assert flux1.family == "flux"  # BFL's names alike: Flux.1's MLP width tells
    # The welcome tells the same from the headers' shapes alone (lora_family.py).
    from dreamwire.backend.conditioning.lora_family import lineage_of
    from dreamwire.backend.library.safetensors_header import read_header

    for path, want in ((loras["kohya"], "flux2"), (flux1.path, "flux"), (sd_file, "sd")):
        shapes = {k: tuple(v["shape"]) for k, v in read_header(path).tensors.items()}
        assert lineage_of(shapes) == want, path
    for other, label in ((lora.read(sd_file), "SD1"), (flux1, "Flux.1")):
        with pytest.raises(DreamwireError) as err:
            lora.apply([(other, 1.0, 1.0)], klein_parts, "klein", "flux2")
        assert err.value.code == ErrorCode.MODEL_MISMATCH
        assert label in err.value.message and "Flux.2" in err.value.message


@pytest.fixture(scope="module")
def engine(klein_root, loras):
    return cpu_engine(klein_root, loras["aitk"].parents[2])


def test_a_lora_tag_in_a_klein_job_equals_diffusers_fused_pipeline(engine, loras):
    base = dict(model="klein", sampler="Euler", steps=2, cfg=1.0, width=64, height=64, seed=5)
    plain = engine.run(Job(prompt=PROMPT, **base)).images[0].image
    styled = engine.run(Job(prompt=PROMPT + " <lora:klein_aitk:0.8>", **base)).images[0]
    assert "klein_aitk" in styled.infotext
    parts = engine.load("klein", "").components
    expected = reference_image(
        engine,
        "klein",
        "Flux2KleinPipeline",
        PROMPT + " ",  # the tag taken out as A1111 takes it (its space stays)
        transformer=_fused(parts, loras["diffusers"], 0.8),
        guidance_scale=1.0,
    )
    assert np.array_equal(styled.image, expected)
    # (Put back after the job: the weights test restores bit for bit through the same patch.)
    assert not np.array_equal(styled.image, plain)
