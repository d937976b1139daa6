"""`dreamwire models convert`: precision, EMA pruning, parts alone and a baked VAE, on a
checkpoint laid out as the original LDM training checkpoints are (EMA copies included)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from dreamwire.backend.cli import main
from dreamwire.backend.library.model_convert import ema_key

UNET = "model.diffusion_model.out.2.weight"
VAE = "first_stage_model.decoder.conv_out.bias"
CLIP = "cond_stage_model.transformer.text_model.final_layer_norm.weight"
POS = "cond_stage_model.transformer.text_model.embeddings.position_ids"


@pytest.fixture
def ckpt(tmp_path):
    g = torch.Generator().manual_seed(3)
    sd = {
        UNET: torch.randn(4, 8, generator=g),
        "model.diffusion_model.out.2.bias": torch.randn(4, generator=g),
        VAE: torch.randn(3, generator=g),
        "first_stage_model.loss.logvar": torch.zeros(1),  # the VAE's training leftover
        CLIP: torch.randn(8, generator=g),
        POS: torch.arange(77)[None],
        "alphas_cumprod": torch.linspace(1, 0, 10, dtype=torch.float64),
        "model_ema.decay": torch.tensor(0.9999),
        "model_ema.num_updates": torch.tensor(1000, dtype=torch.int32),
    }
    for key in (UNET, "model.diffusion_model.out.2.bias"):
        sd[ema_key(key)] = sd[key] + 100  # EMA copies, told apart by the offset
    path = tmp_path / "v1-5-full.ckpt"
    torch.save({"state_dict": sd, "global_step": 5}, path)
    return path, sd


def convert(*args) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["models", "convert", *map(str, args), "--json"]) == 0
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def test_fp16_no_ema_halves_floats_keeps_integers_and_drops_the_ema(ckpt):
    path, sd = ckpt
    r = convert(path, "--precision", "fp16", "--prune", "no-ema")
    assert r["path"].endswith("v1-5-full-fp16-no-ema.safetensors")  # the extension's name
    got = load_file(r["path"])
    assert not any("model_ema" in k for k in got)
    assert "first_stage_model.loss.logvar" not in got  # training-only, pruned
    assert torch.equal(got[UNET], sd[UNET].half())
    assert got["alphas_cumprod"].dtype == torch.float16
    assert torch.equal(got[POS], sd[POS])  # integer ids stay integers
    assert r["bytes_after"] < r["bytes_before"]


def test_ema_only_puts_the_ema_weights_in_place(ckpt):
    path, sd = ckpt
    got = load_file(convert(path, "--prune", "ema-only", "--precision", "bf16")["path"])
    assert torch.equal(got[UNET], (sd[UNET] + 100).bfloat16())
    assert not any(k.startswith("model_ema.") and k not in (
        "model_ema.decay", "model_ema.num_updates") for k in got)  # fmt: skip
    assert "model_ema.num_updates" in got  # the extension keeps the counters
    assert torch.equal(got[VAE], sd[VAE].bfloat16())  # no EMA copy: the weight itself


def test_one_part_alone_and_a_baked_vae(ckpt, tmp_path):
    path, sd = ckpt
    vae = tmp_path / "vae.safetensors"
    save_file({"decoder.conv_out.bias": torch.full((3,), 0.5), "loss.w": torch.ones(1)}, str(vae))
    got = load_file(convert(path, "--only", "vae", "--bake-vae", vae)["path"])
    assert set(got) == {VAE, "first_stage_model.loss.logvar"}
    assert torch.equal(got[VAE], torch.full((3,), 0.5))
    unet = load_file(convert(path, "--only", "unet", "--out", tmp_path / "u.safetensors")["path"])
    assert set(unet) == {UNET, "model.diffusion_model.out.2.bias"}
    clip = load_file(convert(path, "--only", "text-encoder")["path"])
    assert set(clip) == {CLIP, POS}


def test_refusals(ckpt, tmp_path, capsys):
    path, _ = ckpt
    plain = tmp_path / "plain.safetensors"
    save_file({UNET: torch.ones(2)}, str(plain))
    for args, code in (
        ([plain, "--prune", "ema-only"], "model_unsupported"),  # no EMA in it
        ([plain, "--only", "vae"], "model_mismatch"),  # no VAE in it
        ([path, "--bake-vae", plain], "model_mismatch"),  # not a VAE
    ):
        capsys.readouterr()
        assert main(["models", "convert", *map(str, args)]) != 0
        assert f"[{code}]" in capsys.readouterr().err
