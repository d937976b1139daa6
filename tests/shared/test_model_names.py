"""One rule for comparing model names (shared/model_names.py)."""

from __future__ import annotations

import pytest

from dreamwire.shared.model_names import same_model, stem, strip_suffix


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("sub/Model.safetensors [a1b2c3d4]", "model"),
        ("C:\\models\\Stable-diffusion\\DreamShaper_8.ckpt", "dreamshaper_8"),
        ("sd_xl_base_1.0", "sd_xl_base_1.0"),  # a version, not a suffix
        ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0"),
        ("flux1-dev-Q4_K.gguf", "flux1-dev-q4_k"),
        ("4x-UltraSharp.pth", "4x-ultrasharp"),
        ("", ""),
    ],
)
def test_stem(name, want):
    assert stem(name) == want


def test_strip_suffix_keeps_case_and_other_dots():
    assert strip_suffix("Model.SafeTensors") == "Model"
    assert strip_suffix("v1.5-pruned") == "v1.5-pruned"


def test_same_model():
    assert same_model("juggernaut", "SDXL/Juggernaut.safetensors [0123abcd]")
    assert not same_model("model_1.0", "model_1.5")
    assert not same_model("", "")
