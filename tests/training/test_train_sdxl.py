"""LoRA training on the tiny SDXL: both text encoders train beside the UNet (kohya's default),
the UNet gets kohya's size conditioning per picture and the pooled text embedding, the loss
falls, the file is kohya's SDXL format (original-layout UNet names, lora_te1_/lora_te2_,
ss_base_model_version sdxl_base_v1-0), Dreamwire's loader and diffusers' load_lora_weights
both apply it and change the picture, and a stopped run resumed ends bit for bit where an
uninterrupted one does. One tiny SDXL for the module, one engine."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dreamwire.backend.training.options import LoraTrainOptions
from dreamwire.backend.training.run import TrainRequest, run_training
from dreamwire.backend.training.size_conditioning import crop_ltrb, time_ids
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import LoraTraining
from tests.support.training import through_diffusers, write_pictures

STEPS = 12
OPTIONS = LoraTrainOptions(
    network_dim=2, network_alpha=2.0, learning_rate=1e-1, max_train_steps=STEPS, resolution=32
)
KEY = re.compile(
    r"^(lora_unet_(input_blocks|middle_block|output_blocks)_\w+_(to_q|to_k|to_v|to_out_0)"
    r"|lora_te[12]_text_model_encoder_layers_\d+_(self_attn_(q|k|v|out)_proj|mlp_fc[12]))"
    r"\.(lora_down\.weight|lora_up\.weight|alpha)$"
)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A wide and a tall picture (width x height 48x40 and 40x48), both captioned."""
    root = tmp_path_factory.mktemp("xl-data")
    captions = ["a thing, view 0", "a thing, view 1"]
    write_pictures(root / "3_thing", [(48, 40), (40, 48)], captions, seed=1)
    return root


def _request(data, root, name, options=OPTIONS, **kw):
    return TrainRequest(
        data=data, name=name, lora_dir=root / "models" / "Lora", options=options, **kw
    )


def _components(engine):
    return engine.load("tiny-sdxl").components


def _weights(engine) -> dict[str, torch.Tensor]:
    comps = _components(engine)
    return {
        f"{part}.{k}": v.clone()
        for part in ("unet", "text_encoder", "text_encoder_2")
        for k, v in comps[part].state_dict().items()
    }


@pytest.fixture(scope="module")
def trained(xl_engine, xl_root, pictures):
    """One run, with what the UNet was called with at each step."""
    before = _weights(xl_engine)
    calls = []

    def seen(module, args, kwargs):
        added = kwargs["added_cond_kwargs"]
        calls.append((args[2].shape, added["text_embeds"].shape, added["time_ids"].tolist()))

    hook = _components(xl_engine)["unet"].register_forward_pre_hook(seen, with_kwargs=True)
    try:
        result = run_training(xl_engine, _request(pictures, xl_root, "xl"))
    finally:
        hook.remove()
    return result, calls, before


def test_kohyas_crop_convention():
    # kohya's get_crop_ltrb (Stability AI's): the picture fitted inside the bucket.
    assert crop_ltrb((32, 32), (48, 40)) == (0, 2.0, 32, 2.0 + 32 / 1.2)
    assert crop_ltrb((32, 32), (40, 48))[:2] == (2.0, 0)
    assert crop_ltrb((64, 32), (128, 64)) == (0, 0, 64, 32)
    assert time_ids((48, 40), (32, 32)).tolist() == [[40, 48, 2, 0, 32, 32]]


def test_the_unet_gets_each_pictures_size_conditioning_and_both_encoders(trained, xl_engine):
    _, calls, _ = trained
    comps = _components(xl_engine)
    width = comps["text_encoder"].config.hidden_size + comps["text_encoder_2"].config.hidden_size
    assert len(calls) == STEPS
    assert {c[0] for c in calls} == {torch.Size([1, 77, width])}
    assert {c[1] for c in calls} == {torch.Size([1, comps["text_encoder_2"].config.projection_dim])}
    # Original size (h, w), crop top-left, bucket (h, w), per picture.
    assert {tuple(c[2][0]) for c in calls} == {(40, 48, 2, 0, 32, 32), (48, 40, 0, 2, 32, 32)}


def test_the_loss_falls_against_the_same_draws_untrained(trained, xl_engine, xl_root, pictures):
    result, _, _ = trained
    frozen = LoraTrainOptions(**{**vars(OPTIONS), "learning_rate": 1e-12})
    control = run_training(xl_engine, _request(pictures, xl_root, "xl-control", frozen))
    assert result.losses[0] == pytest.approx(control.losses[0])
    late = slice(STEPS // 2, None)
    assert np.mean(result.losses[late]) < 0.97 * np.mean(control.losses[late])


def test_the_file_is_kohyas_sdxl_format(trained):
    result, _, _ = trained
    with safe_open(str(result.path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys and all(KEY.match(k) for k in keys), [k for k in keys if not KEY.match(k)][:5]
    for prefix in ("lora_unet_", "lora_te1_", "lora_te2_"):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["ss_network_train_unet_only"] == "False"
    assert meta["ss_sd_model_name"] == "tiny-sdxl" and meta["ss_network_dim"] == "2"
    tensors = load_file(str(result.path))
    ups = [v for k, v in tensors.items() if k.endswith("lora_up.weight")]
    assert all(v.shape[1] == 2 for v in ups)
    for prefix in ("lora_te1_", "lora_te2_", "lora_unet_"):  # each part learned
        assert any(v.abs().max() > 0 for k, v in tensors.items() if k.startswith(prefix))


def test_the_models_modules_are_handed_back_unchanged(trained, xl_engine):
    _, _, before = trained
    after = _weights(xl_engine)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    comps = _components(xl_engine)
    for part in ("unet", "text_encoder", "text_encoder_2"):
        assert not any("lora" in n for n, _ in comps[part].named_modules()), part


def _job(prompt: str) -> Job:
    return Job(prompt=prompt, steps=1, cfg=5.0, width=32, height=32, seed=11, sampler="Euler")


def test_dreamwires_loader_applies_it_and_changes_the_picture(xl_engine, trained):
    xl_engine.library.refresh()
    plain = xl_engine.run(_job("a thing")).images[0].image
    with_lora = xl_engine.run(_job("a thing <lora:xl:1>")).images[0].image
    assert np.abs(plain.astype(int) - with_lora.astype(int)).max() > 2


def test_diffusers_load_lora_weights_reads_it_and_changes_the_picture(xl_engine, trained):
    import diffusers

    result, _, _ = trained
    comps = _components(xl_engine)
    names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet")
    pipe = diffusers.StableDiffusionXLPipeline(
        **{k: comps[k] for k in names}, scheduler=comps["scheduler"]
    )
    parts = ["unet", "text_encoder", "text_encoder_2"]
    plain, with_lora, layers, downs = through_diffusers(pipe, result.path, parts, "a thing", 1)
    prefixes = ("lora_unet_", "lora_te1_", "lora_te2_")
    assert layers == [sum(k.startswith(p) for k in downs) for p in prefixes]
    assert np.abs(plain - with_lora).max() > 1e-3


class _Stop(Exception):
    pass


def test_stop_and_resume_gives_the_uninterrupted_runs_weights(
    trained, xl_engine, xl_root, pictures
):
    straight, _, _ = trained

    def stop(report):
        if report.step == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run_training(xl_engine, _request(pictures, xl_root, "xl-resumed"), stop)
    steps = []
    resumed = run_training(
        xl_engine, _request(pictures, xl_root, "xl-resumed", resume=True), steps.append
    )
    assert [s.step for s in steps] == list(range(3, STEPS + 1))
    assert resumed.losses == straight.losses[2:]
    a, b = load_file(str(straight.path)), load_file(str(resumed.path))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_train_lora_job_on_sdxl_ends_with_its_sample(xl_engine, xl_root, pictures):
    """Through the queue's runner: the sample picture comes from the SDXL pipeline with the
    LoRA layers on (both text encoders' too), and the LoRA lands where `<lora:>` finds it."""
    shutil.copytree(pictures, xl_root / "training" / "xl-job")
    job = Job(
        mode="train_lora",
        model="tiny-sdxl",
        prompt="a thing",
        steps=1,
        width=32,
        height=32,
        seed=2,
        train_lora=LoraTraining(
            data="xl-job", name="xl-job", network_dim=2, max_train_steps=1, resolution=32
        ),
    )
    progress = []
    result = xl_engine.run(job, progress.append)
    (image,) = result.images
    assert image.image.shape == (32, 32, 3) and image.image.dtype == np.uint8
    steps = [p for p in progress if p.state == "training"]
    assert [p.step for p in steps] == [1] and np.array_equal(steps[0].preview, image.image)
    assert "xl-job" in xl_engine.capabilities()["loras"]
