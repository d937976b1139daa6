"""Motion modules in the artist's folders: found under A1111's and ComfyUI's AnimateDiff
locations, identified from their keys (original AnimateDiff layout as .ckpt and
.safetensors, diffusers' MotionAdapter folder), and loaded as the same adapter with every
tensor of the file used; code in a .ckpt, a file that is no motion module and a missing
name get clear codes."""

from __future__ import annotations

import pickle

import pytest
import torch

from dreamwire.backend.library import motion_modules as mm
from dreamwire.shared.errors import DreamwireError, ErrorCode


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from dreamwire.backend.tiny import motion_modules

    r = tmp_path_factory.mktemp("mm-root")
    motion_modules.build(r)
    return r


def test_every_layout_is_found_identified_and_loads_the_same_adapter(root, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_MOTION_MODULES", str(root / "own"))
    assert sorted(mm.names([root])) == [
        "tiny-motion-adapter",
        "tiny-motion-adapter-xl",
        "tiny_mm_sd1",
        "tiny_mm_sd1_v2",
        "tiny_mm_sdxl",
        "tiny_mm_wide",
    ]
    layouts = {}
    states = {}
    for name in ("tiny_mm_sd1", "tiny_mm_sd1_v2", "tiny-motion-adapter"):
        info = mm.identify(mm.find(name, [root]))
        layouts[name] = (info.layout, info.path.parent.name)
        assert info.block_out_channels == (32, 64) and info.mid_block
        assert (info.layers_per_block, info.max_seq_length) == (1, 32)
        states[name] = mm.load_adapter(info).state_dict()
    assert layouts == {
        "tiny_mm_sd1": ("original", "model"),  # A1111's extension folder
        "tiny_mm_sd1_v2": ("original", "models"),  # ComfyUI-AnimateDiff-Evolved's
        "tiny-motion-adapter": ("diffusers_folder", "animatediff_models"),
    }
    ref = states["tiny-motion-adapter"]
    for name in ("tiny_mm_sd1", "tiny_mm_sd1_v2"):
        assert states[name].keys() == ref.keys()
        assert all(torch.equal(states[name][k], ref[k]) for k in ref), name
    # The SDXL module (no mid block) as AnimateDiff's .ckpt and as a MotionAdapter folder.
    xl = [
        mm.load_adapter(mm.identify(mm.find(n, [root]))).state_dict()
        for n in ("tiny_mm_sdxl", "tiny-motion-adapter-xl")
    ]
    assert xl[0].keys() == xl[1].keys() and not any(k.startswith("mid_block") for k in xl[0])
    assert all(torch.equal(xl[0][k], xl[1][k]) for k in xl[1])


def test_original_keys_convert_one_to_one(root):
    from safetensors.torch import load_file

    original = load_file(root / mm.FOLDERS[1] / "tiny_mm_sd1_v2.safetensors")
    converted = mm.convert_original(original)
    adapter_keys = set(mm.load_adapter(mm.identify(mm.find("tiny_mm_sd1_v2", [root]))).state_dict())
    # Every key lands in the adapter and fills it; only the duplicate positional tables
    # (one per attention in the original, one per block in diffusers) fold together.
    assert set(converted) == adapter_keys
    tables = [k for k in original if k.endswith("pos_encoder.pe")]
    assert len(original) - len(converted) == len(tables) // 2 > 0
    # A second table unlike the first cannot fold into one.
    k = next(k for k in tables if ".attention_blocks.1." in k)
    with pytest.raises(DreamwireError) as err:
        mm.convert_original({**original, k: original[k] + 1})
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED


def test_refusals(root, tmp_path):
    with pytest.raises(DreamwireError) as err:
        mm.find("mm_sd_v15_v2", [root])
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND
    assert "custom_nodes/ComfyUI-AnimateDiff-Evolved/models" in str(err.value)
    wide = mm.identify(mm.find("tiny_mm_wide", [root]))
    with pytest.raises(DreamwireError) as err:
        mm.check_fits(wide, {"block_out_channels": [32, 64]}, "tiny-sd1")
    assert err.value.code is ErrorCode.MODEL_MISMATCH
    # A LoRA (no motion_modules keys) and a HotShot-XL file are not motion modules here.
    from safetensors.torch import save_file

    hsxl = "down_blocks.0.temporal_attentions.0.proj_in.weight"  # Hotshot-XL's keys
    for name, key in (("hsxl", hsxl), ("lora", "lora_unet_down.lora_up.weight")):
        save_file({key: torch.zeros(2)}, tmp_path / f"{name}.safetensors")
        with pytest.raises(DreamwireError) as err:
            mm.identify(tmp_path / f"{name}.safetensors")
        assert err.value.code is ErrorCode.MODEL_UNSUPPORTED
    assert "Hotshot-XL" in str(mm_error(tmp_path / "hsxl.safetensors"))
    # A .ckpt whose pickle wants to build an object is never unpickled.

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"x": Payload()}, evil, pickle_module=pickle)
    with pytest.raises(DreamwireError) as err:
        mm.identify(evil)
    assert err.value.code is ErrorCode.MODEL_UNSAFE


def mm_error(path) -> DreamwireError:
    with pytest.raises(DreamwireError) as err:
        mm.identify(path)
    return err.value


def test_family_is_told_by_the_down_blocks(root, tmp_path):
    """SD1.5 modules have the four down blocks of SD1.x UNets, SDXL's the three of SDXL's
    (at tiny widths here); the tiny modules, two blocks, have no family and fit by widths."""
    from dreamwire.backend.tiny import motion_modules as tiny_mm
    from dreamwire.backend.tiny.files import save_tensors, state_of

    for name, widths, mid in (("sd15", (32, 32, 32, 32), True), ("sdxl", (32, 32, 32), False)):
        state = tiny_mm.to_original(state_of(tiny_mm.adapter(widths, mid_block=mid)))
        save_tensors(state, tmp_path / f"mm_{name}.safetensors")
    sd15 = mm.identify(tmp_path / "mm_sd15.safetensors")
    sdxl = mm.identify(tmp_path / "mm_sdxl.safetensors")
    assert (sd15.family, sdxl.family) == ("sd1", "sdxl")
    mm.check_family(sd15, "sd1", "m")
    mm.check_family(sdxl, "sdxl", "m")
    for info, family, words in ((sd15, "sdxl", "SD1.5"), (sdxl, "sd1", "SDXL")):
        with pytest.raises(DreamwireError) as err:
            mm.check_family(info, family, "the checkpoint")
        assert err.value.code is ErrorCode.MODEL_MISMATCH and words in str(err.value)
    xl = mm.identify(mm.find("tiny_mm_sdxl", [root]))
    assert (xl.family, xl.layout, xl.mid_block) == ("", "original", False)
    mm.check_family(xl, "sd1", "m")  # no family: the UNet's widths decide
