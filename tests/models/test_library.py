"""Scanning A1111 and ComfyUI folders, naming, finding, hashing and refusing unsafe files."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from dreamwire.backend.library import Format, Kind, ModelLibrary, hashing
from dreamwire.backend.library.pickles import safe_torch_load
from dreamwire.shared.errors import DreamwireError, ErrorCode

CKPT = "models/Stable-diffusion"


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def _small(path, tensors=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors or {"x": torch.arange(4, dtype=torch.float32)}, str(path))
    return path


@pytest.fixture
def webui(tiny_models, tmp_path):
    """An A1111 webui folder: checkpoints in a subfolder, embeddings beside models/."""
    root = tmp_path / "stable-diffusion-webui"
    src = tiny_models / "models"
    _link(src / "Stable-diffusion/tiny-sd1.safetensors", root / CKPT / "tiny-sd1.safetensors")
    _link(src / "Stable-diffusion/tiny-sdxl.safetensors", root / CKPT / "xl/tiny-sdxl.safetensors")
    _link(src / "Stable-diffusion/tiny-sd1-diffusers", root / CKPT / "tiny-sd1-diffusers")
    _link(src / "VAE/tiny-vae.safetensors", root / "models/VAE/tiny-vae.safetensors")
    _small(root / "models/Lora/style/ink.safetensors")
    _small(root / "embeddings/bad-hands.safetensors", {"emb_params": torch.zeros(2, 768)})
    _small(root / "models/ControlNet/control_canny.safetensors")
    _small(root / "models/ESRGAN/4x-Ultra.safetensors")
    (root / "models/Stable-diffusion/notes.txt").write_text("not a model")
    return root


@pytest.fixture
def comfy(tiny_models, tmp_path):
    root = tmp_path / "ComfyUI"
    src = tiny_models / "models"
    _link(
        src / "Stable-diffusion/tiny-sd1.safetensors",
        root / "models/checkpoints/tiny-sd1.safetensors",
    )
    _link(src / "VAE/tiny-vae.safetensors", root / "models/vae/tiny-vae.safetensors")
    _small(root / "models/loras/ink.safetensors")
    _small(root / "models/embeddings/bad-hands.safetensors", {"emb_params": torch.zeros(2, 768)})
    _small(root / "models/controlnet/control_canny.safetensors")
    _small(root / "models/upscale_models/4x-Ultra.safetensors")
    return root


def test_scans_a1111_webui_layout(webui):
    lib = ModelLibrary([webui])
    assert sorted(lib.names("checkpoint")) == ["tiny-sd1", "tiny-sd1-diffusers", "xl/tiny-sdxl"]
    assert lib.names(Kind.VAE) == ["tiny-vae"]
    assert lib.names(Kind.LORA) == ["style/ink"]
    assert lib.names(Kind.EMBEDDING) == ["bad-hands"]
    assert lib.names(Kind.CONTROLNET) == ["control_canny"]
    assert lib.names(Kind.UPSCALER) == ["4x-Ultra"]
    by_name = {e.name: e for e in lib.entries("checkpoint")}
    assert by_name["tiny-sd1"].format == Format.SAFETENSORS
    assert by_name["tiny-sd1-diffusers"].format == Format.DIFFUSERS
    assert {e.name: e.arch for e in lib.entries("checkpoint")} == {
        "tiny-sd1": "tiny-sd1",
        "xl/tiny-sdxl": "tiny-sdxl",
        "tiny-sd1-diffusers": "tiny-sd1",
    }
    assert lib.entries("vae")[0].arch == "tiny-vae"
    assert lib.entries("embedding")[0].arch == "sd1"


def test_models_folder_and_webui_folder_give_the_same_checkpoints(webui):
    assert ModelLibrary([webui / "models"]).names("checkpoint") == ModelLibrary([webui]).names(
        "checkpoint"
    )


def test_scans_comfyui_layout(comfy):
    for root in (comfy, comfy / "models"):
        lib = ModelLibrary([root])
        assert lib.summary() == {
            "checkpoint": ["tiny-sd1"],
            "vae": ["tiny-vae"],
            "lora": ["ink"],
            "embedding": ["bad-hands"],
            "controlnet": ["control_canny"],
            "upscaler": ["4x-Ultra"],
            "text_encoder": [],
            "clip_vision": [],
            "style_model": [],
            "marigold": [],
        }
        assert lib.find("checkpoint", "tiny-sd1").arch == "tiny-sd1"


def test_several_roots_first_wins(webui, comfy):
    lib = ModelLibrary([comfy, webui])
    assert lib.find("checkpoint", "tiny-sd1").path.parent.name == "checkpoints"
    assert "xl/tiny-sdxl" in lib.names("checkpoint")


def test_find_accepts_a1111_spellings(webui):
    lib = ModelLibrary([webui])
    entry = lib.find("checkpoint", "tiny-sd1")
    assert lib.find("checkpoint", "tiny-sd1.safetensors") is entry
    assert lib.find("Stable-diffusion", "TINY-SD1") is entry
    short = lib.short_hash(entry)
    assert lib.find("checkpoint", f"tiny-sd1.safetensors [{short}]") is entry
    assert lib.find("checkpoint", "tiny-sdxl").name == "xl/tiny-sdxl"
    assert lib.find("checkpoint", "xl\\tiny-sdxl.safetensors").name == "xl/tiny-sdxl"
    assert lib.find_by_hash("checkpoint", short) is entry
    assert lib.find("loras", "style/ink").kind == Kind.LORA


@pytest.mark.parametrize(
    "name",
    [
        "../VAE/tiny-vae",
        "xl/../../models/VAE/tiny-vae",
        "/etc/passwd",
        "..\\..\\secret",
        "C:\\x",
        "",
    ],
)
def test_find_refuses_names_escaping_the_root(webui, name):
    lib = ModelLibrary([webui])
    with pytest.raises(DreamwireError) as err:
        lib.find("checkpoint", name)
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND


def test_missing_model_lists_close_names(webui):
    lib = ModelLibrary([webui])
    with pytest.raises(DreamwireError) as err:
        lib.find("checkpoint", "tiny-sd2")
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "tiny-sd1" in err.value.message and "tiny-sd2" in err.value.message
    with pytest.raises(DreamwireError) as err:
        lib.find("lora", "nothing-like-it")
    assert err.value.code == ErrorCode.LORA_NOT_FOUND
    assert "style/ink" in err.value.message


def test_short_hash_is_sha256_prefix_and_cached(webui, monkeypatch):
    lib = ModelLibrary([webui])
    entry = lib.find("lora", "style/ink")
    expected = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    assert lib.short_hash(entry) == expected[:10]
    calls = []
    real = hashing._sha256_file
    monkeypatch.setattr(
        hashing, "_sha256_file", lambda p, offset=0: calls.append(p) or real(p, offset)
    )
    assert lib.short_hash(entry) == expected[:10]
    assert calls == []  # served from the cache
    _small(entry.path, {"x": torch.ones(8)})  # the file changes: the cache must not answer
    assert lib.short_hash(entry) == hashlib.sha256(entry.path.read_bytes()).hexdigest()[:10]
    assert len(calls) == 1


def test_lora_addnet_hash_skips_the_header(tmp_path):
    path = _small(tmp_path / "a.safetensors", {"w": torch.ones(3)})
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert hashing.addnet_hash(path) == hashlib.sha256(data[8 + length :]).hexdigest()[:12]


class _Evil:
    """A pickle payload that, if ever unpickled unrestricted, writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_file(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": _Evil(marker)}}, f)
    return path


def test_pickle_that_would_run_code_is_never_run(tmp_path, webui):
    marker = tmp_path / "PWNED"
    evil = _evil_file(webui / CKPT / "evil.ckpt", marker)
    # Sanity: the payload really runs code when unpickled the unsafe way.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()

    lib = ModelLibrary([webui])
    entry = lib.find("checkpoint", "evil")
    assert entry.format == Format.PICKLE
    with pytest.raises(DreamwireError) as err:
        lib.load_pipeline(entry)
    assert err.value.code == ErrorCode.MODEL_UNSAFE
    assert ".safetensors" in err.value.message and "dreamwire models convert" in err.value.message
    with pytest.raises(DreamwireError) as err:
        safe_torch_load(evil)
    assert err.value.code == ErrorCode.MODEL_UNSAFE
    assert not marker.exists()


def test_convert_command_keeps_plain_weights(tmp_path):
    from dreamwire.backend.cli import main
    from dreamwire.backend.library.safetensors_header import read_header

    weights = {"state_dict": {"a.weight": torch.randn(3, 2), "b": torch.arange(5)}, "step": 7}
    src = tmp_path / "model.ckpt"
    torch.save(weights, src)
    assert main(["models", "convert", str(src)]) == 0
    header = read_header(tmp_path / "model.safetensors")
    assert sorted(header.tensors) == ["a.weight", "b"]
    marker = tmp_path / "PWNED"
    assert main(["models", "convert", str(_evil_file(tmp_path / "e.pt", marker))]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_checkpoint_is_reported_not_crashed(tiny_models, tmp_path, damage):
    root = tmp_path / "root"
    target = root / CKPT / "broken.safetensors"
    target.parent.mkdir(parents=True)
    data = (tiny_models / CKPT / "tiny-sd1.safetensors").read_bytes()
    target.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\xff" * 4096, "empty": b""}[damage]
    )
    lib = ModelLibrary([root])
    entry = lib.find("checkpoint", "broken")  # still listed, so the artist sees it
    assert "error" in entry.detail
    with pytest.raises(DreamwireError) as err:
        lib.load_pipeline(entry)
    assert err.value.code in (ErrorCode.MODEL_CORRUPT, ErrorCode.MODEL_UNSUPPORTED)
    assert "broken" in err.value.message


def test_checkpoint_missing_tensors_is_corrupt(tiny_models, tmp_path):
    from safetensors.torch import load_file

    tensors = load_file(str(tiny_models / CKPT / "tiny-sd1.safetensors"))
    dropped = [k for k in tensors if k.startswith("model.diffusion_model.output_blocks.0.")]
    for key in dropped:
        del tensors[key]
    path = tmp_path / "root" / CKPT / "partial.safetensors"
    _small(path, tensors)
    lib = ModelLibrary([tmp_path / "root"])
    with pytest.raises(DreamwireError) as err:
        lib.load_pipeline("partial")
    assert err.value.code == ErrorCode.MODEL_CORRUPT


def test_cli_tiny_and_list(tmp_path, capsys):
    from dreamwire.backend.cli import main

    assert main(["models", "list", "--models", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == []
    assert main(["models", "tiny", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--models", str(tmp_path / "t"), "--json", "--hash"]) == 0
    listed = json.loads(capsys.readouterr().out)["models"]
    names = {(m["kind"], m["name"]): m for m in listed}
    assert names[("checkpoint", "tiny-sd1")]["arch"] == "tiny-sd1"
    assert names[("checkpoint", "tiny-sdxl")]["arch"] == "tiny-sdxl"
    assert len(names[("vae", "tiny-vae")]["hash"]) == 10


def test_vae_file_missing_tensors_is_corrupt(tiny_models, tmp_path):
    from safetensors.torch import load_file

    tensors = load_file(str(tiny_models / "models/VAE/tiny-vae.safetensors"))
    del tensors["decoder.conv_out.weight"]
    _small(tmp_path / "root/models/VAE/partial.safetensors", tensors)
    lib = ModelLibrary([tmp_path / "root"])
    with pytest.raises(DreamwireError) as err:
        lib.load_vae("partial")
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    assert "decoder.conv_out.weight" in err.value.message


def test_symlink_loop_does_not_hang(webui):
    os.symlink(webui / CKPT, webui / CKPT / "loop")
    lib = ModelLibrary([webui])
    assert sorted(lib.names("checkpoint")) == ["tiny-sd1", "tiny-sd1-diffusers", "xl/tiny-sdxl"]


def test_hub_cache_models_load_by_hub_id(tiny_models, tmp_path):
    import shutil

    hub = tmp_path / "hub"
    repo = hub / "models--dreamwire--tiny-sd1"
    shutil.copytree(tiny_models / CKPT / "tiny-sd1-diffusers", repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    shutil.copytree(
        tiny_models / CKPT / "tiny-sd1-diffusers" / "vae", hub / "models--x--vae/snapshots/1"
    )
    union = tiny_models / "models" / "ControlNet" / "controlnet-union-sdxl-1.0"
    shutil.copytree(union, hub / "models--xinsir--controlnet-union-sdxl-1.0/snapshots/2")
    lib = ModelLibrary([hub])
    assert lib.names("controlnet") == ["xinsir/controlnet-union-sdxl-1.0"]
    entry = lib.find("checkpoint", "dreamwire/tiny-sd1")
    assert (entry.format, entry.arch) == (Format.DIFFUSERS, "tiny-sd1")
    assert lib.names("vae") == ["x/vae"]
    pipe = lib.load_pipeline(entry)
    reference = lib.load_pipeline(
        ModelLibrary([tiny_models]).find("checkpoint", "tiny-sd1-diffusers")
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            pipe.unet.state_dict().values(), reference.unet.state_dict().values(), strict=True
        )
    )
