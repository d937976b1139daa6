"""The welcome's LoRA families from safetensors headers alone (conditioning/lora_family.py):
the key names and shapes, never the tensors, re-read only when the file changes."""

from __future__ import annotations

import os

import numpy as np
from safetensors.numpy import save_file

from dreamwire.backend.conditioning import lora_family
from dreamwire.backend.library import Format, Kind, ModelEntry


def _lora(path, keys: dict[str, tuple[int, int]]):
    save_file({k: np.zeros(shape, np.float16) for k, shape in keys.items()}, str(path))
    return ModelEntry(Kind.LORA, path.stem, path, Format.SAFETENSORS)


SDXL = {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (2, 8)}
FLUX = {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (2, 8)}
UNET_ONLY = {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": (2, 8)}


def test_key_names_tell_the_family_and_sd_files_fit_both_sd_families(tmp_path):
    sd = _lora(tmp_path / "sd.safetensors", {"lora_te_text_model_x.lora_down.weight": (2, 8)})
    assert lora_family.entry_families(sd) == ["sd1", "sd2"]
    # The scan's cross-attention width narrows an SD file to one family.
    sd.arch = "sd2"
    assert lora_family.entry_families(sd) == ["sd2"]
    assert lora_family.entry_families(_lora(tmp_path / "xl.safetensors", SDXL)) == ["sdxl"]
    assert lora_family.entry_families(_lora(tmp_path / "f.safetensors", FLUX)) == ["flux"]
    # Flux trained with its CLIP-L (kohya's lora_te1_, as SDXL's): its blocks decide.
    both = _lora(tmp_path / "fte.safetensors", {**FLUX, **SDXL})
    assert lora_family.entry_families(both) == ["flux"]
    # Nothing tells: unknown (hosts offer it with every model).
    assert lora_family.entry_families(_lora(tmp_path / "u.safetensors", UNET_ONLY)) == []


def test_a_changed_file_is_read_again_and_a_damaged_one_is_unknown(tmp_path):
    path = tmp_path / "style.safetensors"
    entry = _lora(path, SDXL)
    assert lora_family.lora_families([entry]) == {"style": ["sdxl"]}
    st = os.stat(path)
    _lora(path, {**FLUX, "pad": (3, 8)})  # another file under the same name
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert lora_family.lora_families([entry]) == {"style": ["flux"]}
    path.write_bytes(b"\xff" * 16)
    assert lora_family.lora_families([entry]) == {}


def test_the_header_is_read_once_per_file_version(tmp_path, monkeypatch):
    entry = _lora(tmp_path / "xl.safetensors", SDXL)
    reads = []
    real = lora_family.read_header
    monkeypatch.setattr(lora_family, "read_header", lambda p: reads.append(p) or real(p))
    for _ in range(3):
        assert lora_family.entry_families(entry) == ["sdxl"]
    assert len(reads) == 1
