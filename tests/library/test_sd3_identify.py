"""SD3 checkpoints told apart from their headers alone: Large, Large Turbo, Medium, SD3.0
Medium, and what else the file holds (shapes as Stability's files have them)."""

from __future__ import annotations

from pathlib import Path

from dreamwire.backend.library.safetensors_header import Header
from dreamwire.backend.library.sd3_identify import folder_arch, sd3_file

P = "model.diffusion_model."


def header(width: int, blocks: int, dual: int = 0, qk_norm: bool = True, extra=(), meta=None):
    tensors = {P + "x_embedder.proj.weight": {"shape": [width, 16, 2, 2]}}
    for i in range(blocks):
        tensors[P + f"joint_blocks.{i}.x_block.attn.qkv.weight"] = {"shape": [3 * width, width]}
        if qk_norm:
            tensors[P + f"joint_blocks.{i}.x_block.attn.ln_q.weight"] = {"shape": [64]}
        if i < dual:
            tensors[P + f"joint_blocks.{i}.x_block.attn2.qkv.weight"] = {
                "shape": [3 * width, width]
            }
    tensors |= {k: {"shape": [1]} for k in extra}
    return Header(tensors, meta or {})


def test_large_medium_turbo_and_sd3_medium():
    large = header(2432, 38, extra=["first_stage_model.encoder.conv_in.weight"])
    found = sd3_file(large, Path("sd3.5_large.safetensors"))
    assert (found.arch, found.variant, found.sections) == ("sd3.5-large", "", ("vae",))
    turbo = sd3_file(large, Path("sd3.5_large_turbo.safetensors"))
    assert (turbo.arch, turbo.variant) == ("sd3.5-large-turbo", "turbo")
    renamed = header(2432, 38, meta={"modelspec.title": "Stable Diffusion 3.5 Large Turbo"})
    assert sd3_file(renamed, Path("my_model.safetensors")).arch == "sd3.5-large-turbo"
    medium = sd3_file(header(1536, 24, dual=13), Path("sd3.5_medium.safetensors"))
    assert (medium.arch, medium.variant) == ("sd3.5-medium", "medium")
    assert sd3_file(header(1536, 24, qk_norm=False), Path("sd3_medium.safetensors")).arch == (
        "sd3-medium"
    )


def test_bundled_text_encoders_and_other_files():
    bundle = header(
        1536,
        24,
        dual=13,
        extra=[
            "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight",
            "text_encoders.clip_g.transformer.text_model.final_layer_norm.weight",
            "text_encoders.t5xxl.transformer.shared.weight",
        ],
    )
    found = sd3_file(bundle, Path("sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"))
    assert found.sections == ("clip_l", "clip_g", "t5")
    assert sd3_file(Header({"x": {"shape": [1]}}, {}), Path("x.safetensors")) is None


def test_diffusers_folders():
    base = {"_class_name": "SD3Transformer2DModel", "joint_attention_dim": 4096}
    assert folder_arch(base | {"qk_norm": "rms_norm"}, "stable-diffusion-3.5-large") == (
        "sd3.5-large"
    )
    turbo = folder_arch(base | {"qk_norm": "rms_norm"}, "stable-diffusion-3.5-large-turbo")
    assert turbo == "sd3.5-large-turbo"
    medium = base | {"qk_norm": "rms_norm", "dual_attention_layers": list(range(13))}
    assert folder_arch(medium, "stable-diffusion-3.5-medium") == "sd3.5-medium"
