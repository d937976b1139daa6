"""The BFL <-> diffusers Flux transformer key mapping is exact, both ways.

diffusers' converter (convert_flux_transformer_checkpoint_to_diffusers) is the reference for
what a real BFL file means; it assumes the real width (3072). Its operations only act on
rows, so a "thin" state dict (real row counts, one column) checks it against our writer at
the real width without gigabytes; the tiny model checks real values both ways."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel
from diffusers.loaders.single_file_utils import (
    convert_flux_transformer_checkpoint_to_diffusers as diffusers_converter,
)

from dreamwire.backend.library import flux_layout

# Names as they are in flux1-dev.safetensors.
REAL_BFL_KEYS = {
    "img_in.weight",
    "txt_in.weight",
    "time_in.in_layer.weight",
    "vector_in.out_layer.bias",
    "guidance_in.in_layer.weight",
    "double_blocks.0.img_attn.qkv.weight",
    "double_blocks.0.txt_attn.norm.key_norm.scale",
    "double_blocks.0.img_mod.lin.weight",
    "double_blocks.1.txt_mlp.2.bias",
    "single_blocks.0.linear1.weight",
    "single_blocks.1.linear2.bias",
    "single_blocks.0.modulation.lin.weight",
    "single_blocks.0.norm.query_norm.scale",
    "final_layer.linear.weight",
    "final_layer.adaLN_modulation.1.weight",
}


def _thin(guidance: bool) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = FluxTransformer2DModel(num_layers=2, num_single_layers=2, guidance_embeds=guidance)
    gen = torch.Generator().manual_seed(7)
    return {
        k: torch.randn((v.shape[0],) + ((1,) if v.ndim == 2 else ()), generator=gen)
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("guidance", [True, False], ids=["dev", "schnell"])
def test_writer_is_the_inverse_of_diffusers_converter_at_real_width(guidance):
    state = _thin(guidance)
    bfl = flux_layout.diffusers_to_bfl(state)
    expected_keys = REAL_BFL_KEYS if guidance else {k for k in REAL_BFL_KEYS if "guidance" not in k}
    assert expected_keys <= set(bfl)
    assert ("guidance_in.in_layer.weight" in bfl) == guidance
    for converted in (diffusers_converter(dict(bfl)), flux_layout.bfl_to_diffusers(dict(bfl))):
        assert set(converted) == set(state)
        for key, value in state.items():
            assert torch.equal(converted[key], value), key


def test_tiny_model_round_trips_with_values():
    torch.manual_seed(3)
    model = FluxTransformer2DModel(
        in_channels=64,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
        guidance_embeds=True,
    )
    state = model.state_dict()
    bfl = flux_layout.diffusers_to_bfl(state)
    shape = flux_layout.bfl_shape({k: tuple(v.shape) for k, v in bfl.items()})
    assert shape == flux_layout.FluxShape(1, 2, True, 32, 64)
    # The single block's fused projection is q, k, v (32 each) and the MLP input (128).
    assert bfl["single_blocks.0.linear1.weight"].shape == (3 * 32 + 128, 32)
    back = flux_layout.bfl_to_diffusers(bfl)
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_unknown_keys_are_refused_not_dropped():
    bfl = flux_layout.diffusers_to_bfl(_thin(True))
    bfl["double_blocks.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="unknown keys"):
        flux_layout.bfl_to_diffusers(bfl)
    with pytest.raises(KeyError):
        flux_layout.diffusers_to_bfl({"transformer_blocks.0.mystery.weight": torch.zeros(1)})
