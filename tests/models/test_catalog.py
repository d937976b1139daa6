"""The catalog's real-size configs describe the real architectures, and the LDM key layout
written for them is the one diffusers' single-file loader reads back."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers.loaders import single_file_utils as sfu
from models_support import ldm_state, meta_components, write_sparse_safetensors

from dreamwire import catalog
from dreamwire.backend.library.catalog import pipeline_config_dir
from dreamwire.backend.library.identify import checkpoint_arch
from dreamwire.backend.library.safetensors_header import read_header

# Parameter counts of the released models (UNet, VAE, text encoder(s)).
KNOWN_SIZES = {
    "sd1": (859_520_964, 83_653_863, [123_060_480]),
    "sd2-v": (865_910_724, 83_653_863, [340_387_840]),
    "sd2-base": (865_910_724, 83_653_863, [340_387_840]),
    "sdxl-base": (2_567_463_684, 83_653_863, [123_060_480, 694_659_840]),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch", sorted(KNOWN_SIZES))
def test_real_configs_have_released_sizes(arch):
    parts = meta_components(arch)
    unet, vae, texts = KNOWN_SIZES[arch]
    assert _count(parts["unet"]) == unet
    assert _count(parts["vae"]) == vae
    encoders = [parts[k] for k in ("text_encoder", "text_encoder_2") if k in parts]
    assert [_count(m) for m in encoders] == texts


def test_prediction_types_and_scaling():
    def cfg(arch, comp, name="config.json"):
        return json.loads((catalog.config_dir(arch) / comp / name).read_text())

    assert cfg("sd2-v", "scheduler", "scheduler_config.json")["prediction_type"] == "v_prediction"
    assert cfg("sd2-base", "scheduler", "scheduler_config.json")["prediction_type"] == "epsilon"
    assert cfg("sd1", "scheduler", "scheduler_config.json")["prediction_type"] == "epsilon"
    assert cfg("sdxl-base", "vae")["scaling_factor"] == 0.13025
    assert cfg("sd1", "vae")["scaling_factor"] == 0.18215
    assert cfg("sd2-v", "unet")["sample_size"] * 8 == 768


@pytest.mark.parametrize(
    ("arch", "diffusers_type"),
    [("sd1", "v1"), ("sd2-v", "v2"), ("sdxl-base", "xl_base"), ("sd1-inpaint", "inpainting")],
)
def test_ldm_layout_round_trips_through_diffusers_conversion(arch, diffusers_type):
    """Real-size state dicts (meta tensors) written in our LDM layout are read by diffusers'
    own converters back into exactly the diffusers keys and shapes."""
    state = ldm_state(arch)
    parts = meta_components(arch)
    assert sfu.infer_diffusers_model_type(state) == diffusers_type
    folder = catalog.config_dir(arch)
    unet_cfg = json.loads((folder / "unet/config.json").read_text())
    vae_cfg = json.loads((folder / "vae/config.json").read_text())
    pairs = [
        (sfu.convert_ldm_unet_checkpoint(state, unet_cfg), parts["unet"]),
        (sfu.convert_ldm_vae_checkpoint(state, vae_cfg), parts["vae"]),
    ]
    if arch.startswith("sdxl"):
        te = sfu.convert_ldm_clip_checkpoint(state)
        pairs.append(
            ({k.removeprefix("text_model."): v for k, v in te.items()}, parts["text_encoder"])
        )
        te2 = sfu.convert_open_clip_checkpoint(
            parts["text_encoder_2"], state, prefix="conditioner.embedders.1.model."
        )
        pairs.append((te2, parts["text_encoder_2"]))
    elif arch.startswith("sd2"):
        te = sfu.convert_open_clip_checkpoint(parts["text_encoder"], state)
        pairs.append(
            ({k.removeprefix("text_model."): v for k, v in te.items()}, parts["text_encoder"])
        )
    else:
        te = sfu.convert_ldm_clip_checkpoint(state)
        pairs.append(
            ({k.removeprefix("text_model."): v for k, v in te.items()}, parts["text_encoder"])
        )
    for converted, module in pairs:
        expected = {
            k: tuple(v.shape) for k, v in module.state_dict().items() if "position_ids" not in k
        }
        got = {k: tuple(v.shape) for k, v in converted.items() if "position_ids" not in k}
        assert got == expected


@pytest.mark.parametrize(
    ("arch", "filename", "expected"),
    [
        ("sd1", "dreamshaper_8.safetensors", "sd1"),
        ("sd1-inpaint", "sd-v1-5-inpainting.safetensors", "sd1-inpaint"),
        ("sd2-v", "v2-1_768-ema-pruned.safetensors", "sd2-v"),
        ("sd2-v", "v2-1_512-ema-pruned.safetensors", "sd2-base"),
        ("sdxl-base", "sd_xl_base_1.0.safetensors", "sdxl-base"),
    ],
)
def test_identifies_real_size_checkpoints_from_header(tmp_path, arch, filename, expected):
    shapes = {k: tuple(v.shape) for k, v in ldm_state(arch).items()}
    path = write_sparse_safetensors(tmp_path / filename, shapes)
    assert checkpoint_arch(read_header(path), path) == expected


def test_sd2_prediction_from_sidecar_yaml(tmp_path):
    """A1111 reads a checkpoint's config from a .yaml of the same name; so do we."""
    shapes = {k: tuple(v.shape) for k, v in ldm_state("sd2-v").items()}
    path = write_sparse_safetensors(tmp_path / "my_base_model.safetensors", shapes)
    assert checkpoint_arch(read_header(path), path) == "sd2-base"
    (tmp_path / "my_base_model.yaml").write_text("model:\n  params:\n    parameterization: v\n")
    assert checkpoint_arch(read_header(path), path) == "sd2-v"


@pytest.mark.parametrize("arch", ["sd1", "sd2-v", "sdxl-base"])
def test_config_folder_loads_offline_with_tokenizers(arch, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_CACHE", str(tmp_path))
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    folder = pipeline_config_dir(arch)
    assert folder == pipeline_config_dir(arch)  # built once, then reused
    cfg = UNet2DConditionModel.load_config(str(folder), subfolder="unet", local_files_only=True)
    assert cfg["in_channels"] == 4
    tok = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    expected_pad = 0 if arch.startswith("sd2") else 49407
    assert tok.pad_token_id == expected_pad
    if arch.startswith("sdxl"):
        tok2 = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer_2")
        assert tok2.pad_token_id == 0


def test_special_unets_are_named_not_misloaded(tmp_path):
    from dreamwire.backend.library import Format, Kind, ModelEntry
    from dreamwire.backend.library.loading import load_pipeline
    from dreamwire.shared.errors import DreamwireError, ErrorCode

    shapes = {k: tuple(v.shape) for k, v in ldm_state("sd2-v").items()}
    conv = "model.diffusion_model.input_blocks.0.0.weight"
    shapes[conv] = (320, 5, 3, 3)  # SD2 depth2img takes 4 latent + 1 depth channel
    path = write_sparse_safetensors(tmp_path / "512-depth-ema.safetensors", shapes)
    arch = checkpoint_arch(read_header(path), path)
    assert arch == "sd2-base-depth"
    with pytest.raises(DreamwireError) as err:
        load_pipeline(ModelEntry(Kind.CHECKPOINT, "512-depth-ema", path, Format.SAFETENSORS, arch))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "sd2-base-depth" in err.value.message
