"""SD3 files found where ComfyUI/Forge keep them, and a model lacking parts named in one
clear error before anything loads."""

from __future__ import annotations

import pytest

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode


def test_the_comfyui_tree_is_found_and_identified(sd3_library):
    arch = {e.name: e.arch for e in sd3_library.entries()}
    assert arch["tiny-sd3"] == "tiny-sd3"  # the diffusers folder
    assert arch["sd3.5_large"] == "tiny-sd3"
    assert arch["sd3.5_large_turbo"] == "tiny-sd3-turbo"  # told by its name
    assert (arch["clip_l"], arch["clip_g"], arch["t5xxl_fp16"]) == (
        "tiny-clip",
        "tiny-clip-g",
        "tiny-t5",
    )
    bundle = sd3_library.find(Kind.CHECKPOINT, "sd3.5_medium_incl_clips_t5xxl")
    assert bundle.detail["sections"] == ["clip_l", "clip_g", "t5", "vae"]
    assert sd3_library.find(Kind.CHECKPOINT, "sd3.5_large").detail["sections"] == ["vae"]
    assert sd3_library.missing_parts() == {}


def test_missing_clip_g_and_t5_are_named_in_one_error(sd3_root, tmp_path):
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "clip").mkdir()
    source = sd3_root / "models"
    (models / "checkpoints" / "sd3.5_large.safetensors").symlink_to(
        source / "checkpoints" / "sd3.5_large.safetensors"
    )
    (models / "clip" / "clip_l.safetensors").symlink_to(source / "clip" / "clip_l.safetensors")
    (tmp_path / "comfy").symlink_to(sd3_root / "comfy")
    library = ModelLibrary([tmp_path])
    message = library.missing_parts()["sd3.5_large"]
    assert "clip_g.safetensors" in message and "t5xxl_fp16.safetensors" in message
    assert "clip_l.safetensors" not in message  # it is there
    with pytest.raises(DreamwireError) as err:
        library.load_pipeline("sd3.5_large")
    assert err.value.code == ErrorCode.MODEL_PART_MISSING
