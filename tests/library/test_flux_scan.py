"""Flux files are found where ComfyUI and Forge keep them and identified from their headers."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.flux_identify import flux_file, text_encoder_arch
from dreamwire.backend.library.flux_layout import COMFY_TRANSFORMER, diffusers_to_bfl
from dreamwire.backend.library.identify import vae_arch
from dreamwire.backend.library.safetensors_header import Header


def _rows(library: ModelLibrary) -> dict[str, tuple]:
    return {
        e.path.relative_to(e.root.parent.parent).as_posix(): (
            e.kind.value,
            e.format.value,
            e.arch,
            e.detail.get("variant"),
            e.detail.get("all_in_one"),
        )
        for e in library.entries()
    }


def test_comfyui_install_is_scanned_and_identified(flux_trees):
    rows = _rows(ModelLibrary([flux_trees.comfy]))
    assert rows == {
        "models/unet/flux1-dev.safetensors": (
            "checkpoint",
            "safetensors",
            "tiny-flux",
            "dev",
            False,
        ),
        "models/unet/flux1-dev-Q8_0.gguf": ("checkpoint", "gguf", "tiny-flux", "dev", False),
        "models/unet/flux1-dev-Q4_0.gguf": ("checkpoint", "gguf", "tiny-flux", "dev", False),
        "models/diffusion_models/flux1-dev-fp8.safetensors": (
            "checkpoint",
            "safetensors",
            "tiny-flux",
            "dev",
            False,
        ),
        "models/checkpoints/flux1-dev-aio.safetensors": (
            "checkpoint",
            "safetensors",
            "tiny-flux",
            "dev",
            True,
        ),
        "models/clip/clip_l.safetensors": ("text_encoder", "safetensors", "tiny-clip", None, None),
        "models/text_encoders/t5xxl_fp16.safetensors": (
            "text_encoder",
            "safetensors",
            "tiny-t5",
            None,
            None,
        ),
        "models/text_encoders/t5-v1_1-xxl-encoder-Q8_0.gguf": (
            "text_encoder",
            "gguf",
            "tiny-t5",
            None,
            None,
        ),
        "models/vae/ae.safetensors": ("vae", "safetensors", "tiny-flux-vae", None, None),
    }


def test_forge_install_is_scanned_and_identified(flux_trees):
    # The models root given as Forge's models/ folder itself, as artists often do.
    rows = _rows(ModelLibrary([flux_trees.forge / "models"]))
    assert rows == {
        "models/Stable-diffusion/flux1-schnell.safetensors": (
            "checkpoint",
            "safetensors",
            "tiny-flux",
            "schnell",
            False,
        ),
        "models/text_encoder/clip_l.safetensors": (
            "text_encoder",
            "safetensors",
            "tiny-clip",
            None,
            None,
        ),
        "models/text_encoder/t5xxl_fp8_e4m3fn.safetensors": (
            "text_encoder",
            "safetensors",
            "tiny-t5",
            None,
            None,
        ),
        "models/VAE/ae.safetensors": ("vae", "safetensors", "tiny-flux-vae", None, None),
    }


def test_models_list_shows_flux_files_with_their_arch(flux_trees):
    from dreamwire.backend.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models", "list", "--models", str(flux_trees.comfy)]) == 0
    lines = out.getvalue().splitlines()
    assert any("flux1-dev-Q4_0" in ln and "(gguf, tiny-flux)" in ln for ln in lines), lines
    assert any("text_encoder" in ln and "t5xxl_fp16" in ln and "tiny-t5" in ln for ln in lines)
    assert any("ae" in ln and "tiny-flux-vae" in ln for ln in lines)


def _real_header(guidance: bool = True, in_channels: int = 64, prefix: str = "") -> Header:
    """The header of a real-size BFL file (two blocks of each kind), shapes only."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(
            num_layers=2, num_single_layers=2, guidance_embeds=guidance, in_channels=in_channels
        )
        bfl = diffusers_to_bfl(model.state_dict())
    return Header(
        tensors={prefix + k: {"dtype": "BF16", "shape": list(v.shape)} for k, v in bfl.items()},
        metadata={},
    )


@pytest.mark.parametrize(
    ("name", "guidance", "channels", "prefix", "arch", "variant"),
    [
        ("flux1-dev.safetensors", True, 64, "", "flux-dev", "dev"),
        ("flux1-schnell.safetensors", False, 64, "", "flux-schnell", "schnell"),
        ("flux1-fill-dev.safetensors", True, 384, "", "flux-fill", "fill"),
        ("flux1-kontext-dev.safetensors", True, 64, "", "flux-kontext", "kontext"),
        ("my-merge.safetensors", True, 64, COMFY_TRANSFORMER, "flux-dev", "dev"),
    ],
)
def test_real_size_transformers_are_told_apart(name, guidance, channels, prefix, arch, variant):
    found = flux_file(_real_header(guidance, channels, prefix), Path(name))
    assert (found.arch, found.variant, found.prefix) == (arch, variant, prefix)
    assert not found.all_in_one


def test_real_size_text_encoders_and_vae_are_named():
    def header(**shapes) -> Header:
        return Header({k: {"dtype": "F16", "shape": s} for k, s in shapes.items()}, {})

    clip = header(**{"text_model.encoder.layers.0.self_attn.q_proj.weight": [768, 768]})
    t5 = header(**{"encoder.block.0.layer.0.SelfAttention.q.weight": [4096, 4096]})
    t5_gguf = header(**{"enc.blk.0.attn_q.weight": [4096, 4096]})
    vae16 = header(
        **{"encoder.conv_in.weight": [128, 3, 3, 3], "encoder.conv_out.weight": [32, 512, 3, 3]}
    )
    vae4 = header(
        **{"encoder.conv_in.weight": [128, 3, 3, 3], "encoder.conv_out.weight": [8, 512, 3, 3]}
    )
    assert [text_encoder_arch(h) for h in (clip, t5, t5_gguf)] == ["clip-l", "t5-xxl", "t5-xxl"]
    assert (vae_arch(vae16), vae_arch(vae4)) == ("flux-vae", "sd-vae")
    assert flux_file(vae16, Path("ae.safetensors")) is None


def test_parameter_counts_come_from_headers(flux_trees):
    from dreamwire.backend.library.sizes import checkpoint_params

    library = ModelLibrary([flux_trees.comfy])
    transformer = sum(p.numel() for p in flux_trees.parts["transformer"].parameters())
    everything = transformer + sum(
        sum(p.numel() for p in flux_trees.parts[n].parameters())
        for n in ("text_encoder", "text_encoder_2", "vae")
    )
    counts = {e.name: checkpoint_params(e) for e in library.entries("checkpoint")}
    for name in ("flux1-dev", "flux1-dev-fp8", "flux1-dev-Q8_0", "flux1-dev-Q4_0"):
        assert counts[name] == transformer, name
    # The all-in-one also holds CLIP-L (plus ComfyUI's unused text projection), T5 and the VAE.
    width = flux_trees.parts["text_encoder"].config.hidden_size
    assert counts["flux1-dev-aio"] == everything + width * width
