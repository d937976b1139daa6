"""Z-Image LoRAs in ai-toolkit's (diffusers), kohya's and ComfyUI's names patch exactly what
diffusers' own load_lora_weights + fuse_lora gives, restore bit for bit, and keep to the
Z-Image lineage both ways."""

from __future__ import annotations

import copy

import pytest
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode
from tests.support.lora_reference import fused_transformer, patched_state


@pytest.fixture(scope="module")
def loras(zimage_tree, tmp_path_factory):
    from dreamwire.backend.tiny.zimage_lora import write_zimage_loras

    folder = tmp_path_factory.mktemp("zimage-loras")
    paths = {n: folder / f"zimage_{n}.safetensors" for n in ("aitk", "kohya", "comfy")}
    write_zimage_loras(zimage_tree.parts["transformer"], **paths)
    return paths


def _patched(parts: dict, path, multiplier: float) -> dict[str, torch.Tensor]:
    return patched_state(parts, path, multiplier, "tiny-zimage", "zimage")


def _fused(parts: dict, path, scale: float) -> dict[str, torch.Tensor]:
    return fused_transformer("ZImagePipeline", parts, path, scale).state_dict()


def test_z_image_lora_formats_patch_what_diffusers_fuse_lora_gives(zimage_tree, loras):
    parts = zimage_tree.parts
    base = copy.deepcopy(parts["transformer"].state_dict())
    got = {n: _patched(parts, p, 0.8) for n, p in loras.items()}
    # Restored bit for bit after each.
    assert all(torch.equal(v, base[k]) for k, v in parts["transformer"].state_dict().items())
    for mine, reference in (("aitk", "aitk"), ("comfy", "aitk"), ("kohya", "kohya")):
        want = _fused(parts, loras[reference], 0.8)
        changed = 0
        for k, v in want.items():
            assert torch.allclose(got[mine][k], v, atol=1e-6), (mine, k)
            changed += not torch.equal(v, base[k])
        # q, k, v, out and the other trained layers.
        assert changed >= 8, (mine, changed)


def test_z_image_lora_lineage_both_ways(zimage_tree, loras, tmp_path):
    from dreamwire.backend.conditioning import lora
    from dreamwire.backend.tiny.files import save_tensors

    zfile = lora.read(loras["kohya"])
    assert zfile.family == "zimage"
    # An SD1.x model's components (the lineage is told from which parts a model has).
    sd = {n: torch.nn.Linear(2, 2) for n in ("unet", "vae", "text_encoder")}
    with pytest.raises(DreamwireError) as err:
        lora.apply([(zfile, 1.0, 1.0)], sd, "an SD model")
    assert err.value.code == ErrorCode.MODEL_MISMATCH and "Z-Image" in err.value.message
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    sd_file = save_tensors(
        {
            f"{te}.lora_down.weight": torch.zeros(4, 768),
            f"{te}.lora_up.weight": torch.zeros(768, 4),
        },
        tmp_path / "sd15_style.safetensors",
    )
    with pytest.raises(DreamwireError) as err:
        lora.apply([(lora.read(sd_file), 1.0, 1.0)], zimage_tree.parts, "tiny-zimage", "zimage")
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "SD1" in err.value.message and "Z-Image" in err.value.message
