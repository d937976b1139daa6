"""LoRA training on the tiny SD1 model: the loss falls, the file is kohya's, and both
Dreamwire's loader and diffusers' `load_lora_weights` apply it and change the picture."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dreamwire.backend.training.options import LoraTrainOptions
from dreamwire.backend.training.run import TrainRequest, run_training
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from tests.support.training import through_diffusers

STEPS = 40
OPTIONS = LoraTrainOptions(
    network_dim=4,
    network_alpha=2.0,
    learning_rate=3e-2,
    max_train_steps=STEPS,
    resolution=32,
    seed=3,
)
KOHYA_KEY = re.compile(
    r"^(lora_unet_(down|mid|up)_blocks?_[\w]*?attentions_\d+_transformer_blocks_\d+_attn[12]_"
    r"(to_q|to_k|to_v|to_out_0)"
    # The text encoder trains too (kohya's default), CLIP's text_model_ level kept.
    r"|lora_te_text_model_encoder_layers_\d+_(self_attn_(q|k|v|out)_proj|mlp_fc[12]))"
    r"\.(lora_down\.weight|lora_up\.weight|alpha)$"
)


def _unet_state(engine):
    unet = engine.load("tiny-sd1").components["unet"]
    return {k: v.clone() for k, v in unet.state_dict().items()}


@pytest.fixture(scope="module")
def trained(train_engine, train_root, two_images):
    before = _unet_state(train_engine)
    reports = []
    request = TrainRequest(
        data=two_images, name="thing", lora_dir=train_root / "models" / "Lora", options=OPTIONS
    )
    result = run_training(train_engine, request, reports.append)
    return result, reports, before


def test_training_lowers_the_loss(train_engine, train_root, two_images, trained):
    """The per-step loss mostly follows the random timestep and noise of each step, and those
    draws depend only on the seed: so the run is compared with an untrained run on the very
    same draws (a learning rate too small to move a weight)."""
    result, _, _ = trained
    control = run_training(
        train_engine,
        TrainRequest(
            data=two_images,
            name="control",
            lora_dir=train_root / "models" / "Lora",
            options=LoraTrainOptions(**{**vars(OPTIONS), "learning_rate": 1e-12}),
        ),
    )
    assert result.losses[0] == pytest.approx(control.losses[0])  # same draws, same start
    late = slice(STEPS // 2, None)
    trained_late, control_late = np.mean(result.losses[late]), np.mean(control.losses[late])
    assert trained_late < 0.97 * control_late, (trained_late, control_late)


def test_progress_reports_every_step(trained):
    result, reports, _ = trained
    assert [r.step for r in reports] == list(range(1, STEPS + 1))
    assert {r.total for r in reports} == {STEPS}
    assert [r.loss for r in reports] == result.losses


def test_the_models_unet_is_handed_back_unchanged(train_engine, trained):
    _, _, before = trained
    after = _unet_state(train_engine)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_the_file_has_kohya_keys_and_ss_metadata(trained):
    result, _, _ = trained
    with safe_open(str(result.path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        tensors = {k: f.get_tensor(k) for k in keys}
    assert result.path.name == "thing.safetensors"
    assert keys and all(KOHYA_KEY.match(k) for k in keys), keys[:5]
    modules = {k.rsplit(".", 2)[0] if "lora_" in k else k[: -len(".alpha")] for k in keys}
    for m in modules:
        assert tensors[f"{m}.lora_down.weight"].shape[0] == OPTIONS.network_dim
        assert tensors[f"{m}.lora_up.weight"].shape[1] == OPTIONS.network_dim
        assert float(tensors[f"{m}.alpha"]) == OPTIONS.network_alpha
    # lora_up starts at zero (peft's and kohya's init): training moved it.
    assert any(tensors[f"{m}.lora_up.weight"].abs().max() > 0 for m in modules)
    assert meta["ss_network_dim"] == "4"
    assert float(meta["ss_network_alpha"]) == 2.0
    assert float(meta["ss_learning_rate"]) == 3e-2
    assert meta["ss_max_train_steps"] == str(STEPS) and meta["ss_steps"] == str(STEPS)
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_network_train_unet_only"] == "False"
    assert any(k.startswith("lora_te_") for k in keys) and any("lora_unet_" in k for k in keys)
    assert meta["ss_sd_model_name"] == "tiny-sd1"
    assert meta["ss_seed"] == "3" and meta["ss_resolution"] == "(32, 32)"
    assert meta["ss_num_train_images"] == "10"  # 2 pictures x 5 repeats
    assert '"5_thing": {"n_repeats": 5, "img_count": 2}' in meta["ss_dataset_dirs"]


def _job(prompt: str) -> Job:
    return Job(prompt=prompt, steps=2, cfg=5.0, width=32, height=32, seed=11, sampler="Euler")


def test_dreamwires_loader_applies_it_and_changes_the_picture(train_engine, trained):
    train_engine.library.refresh()
    plain = train_engine.run(_job("a red thing")).images[0].image
    with_lora = train_engine.run(_job("a red thing <lora:thing:1>")).images[0].image
    assert np.abs(plain.astype(int) - with_lora.astype(int)).max() > 2


def test_diffusers_load_lora_weights_reads_it_and_changes_the_picture(train_engine, trained):
    import diffusers

    result, _, _ = trained
    comps = train_engine.load("tiny-sd1").components
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    pipe = diffusers.StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    plain, with_lora, layers, downs = through_diffusers(
        pipe, result.path, ["unet", "text_encoder"], "a red thing", 2
    )
    assert sum(layers) == len(downs)
    assert np.abs(plain - with_lora).max() > 1e-3


def test_an_existing_lora_is_not_overwritten(train_engine, train_root, two_images, trained):
    result, _, _ = trained
    before = result.path.read_bytes()
    request = TrainRequest(data=two_images, name="thing", lora_dir=result.path.parent)
    with pytest.raises(DreamwireError) as err:
        run_training(train_engine, request)
    assert err.value.code is ErrorCode.INVALID_JOB
    assert result.path.read_bytes() == before


def test_cli_prints_step_and_loss(train_root, two_images, capsys):
    from dreamwire.backend.cli import main

    argv = ["train-lora", "--models", str(train_root), "--data", str(two_images)]
    argv += ["--name", "cli", "--steps", "2", "--resolution", "32", "--rank", "2"]
    assert main(argv + ["--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["step", "1/2"], ["step", "2/2"]]
    assert all(float(line.split()[-1]) > 0 for line in lines)
    assert (train_root / "models" / "Lora" / "cli.safetensors").is_file()


class _Stop(Exception):
    pass


def test_a_run_stopped_midway_leaves_no_lora_and_the_unet_as_it_was(
    train_engine, train_root, two_images
):
    before = _unet_state(train_engine)

    def stop(report):
        raise _Stop  # what a cancel (or any failure inside the loop) does

    lora_dir = train_root / "models" / "Lora"
    request = TrainRequest(data=two_images, name="stopped", lora_dir=lora_dir, options=OPTIONS)
    with pytest.raises(_Stop):
        run_training(train_engine, request, stop)
    # No LoRA where <lora:stopped> would find it; only the state a resume goes on from.
    assert [p.name for p in lora_dir.glob("stopped*")] == ["stopped.train-state"]
    train_engine.library.refresh()
    assert "stopped" not in train_engine.capabilities()["loras"]
    unet = train_engine.load("tiny-sd1").components["unet"]
    assert not any("lora" in name for name, _ in unet.named_modules())
    after = _unet_state(train_engine)
    assert all(torch.equal(after[k], before[k]) for k in before)
