"""A train_lora job through the engine (the queue's runner): progress with loss and seconds
left, sample pictures as previews, cancel that saves the state and a resumed job that goes
on from it, the LoRA in the LoRA folder, and clear errors for bad training folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dreamwire.backend.training.state import load_state
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import LoraTraining


@pytest.fixture(scope="module")
def training_folder(train_root, two_images):
    """The kohya folder by name, where a job finds it: <model root>/training/thing."""
    shutil.copytree(two_images, train_root / "training" / "thing")
    return "thing"


def _job(data: str, name: str, **train) -> Job:
    settings = dict(network_dim=2, max_train_steps=3, resolution=32, sample_every_n_steps=2)
    return Job(
        mode="train_lora",
        prompt="a red thing",
        steps=1,
        cfg=5.0,
        width=32,
        height=32,
        seed=5,
        sampler="Euler",
        train_lora=LoraTraining(data=data, name=name, **{**settings, **train}),
    )


def test_cancel_saves_the_state_and_a_resumed_job_finishes_with_samples(
    train_engine, train_root, training_folder
):
    unet = train_engine.load("tiny-sd1").components["unet"]
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    seen = []
    with pytest.raises(DreamwireError) as err:
        # Cancel pressed during the first step: it stops when that step is done.
        train_engine.run(
            _job(training_folder, "job-lora"),
            seen.append,
            should_cancel=lambda: any(p.state == "training" for p in seen),
        )
    assert err.value.code is ErrorCode.CANCELLED
    lora_dir = train_root / "models" / "Lora"
    assert load_state(lora_dir / "job-lora.train-state").step == 1
    assert not (lora_dir / "job-lora.safetensors").exists()

    progress = []
    result = train_engine.run(_job(training_folder, "job-lora", resume=True), progress.append)
    steps = [p for p in progress if p.state == "training"]
    assert [p.step for p in steps] == [2, 3] and {p.total for p in steps} == {3}
    assert all(p.loss > 0 and p.eta >= 0 for p in steps)
    assert steps[-1].eta == 0
    # Samples every 2 steps and after the last, at the job's size.
    assert [p.preview is not None for p in steps] == [True, True]
    assert steps[0].preview.shape == (32, 32, 3) and steps[0].preview.dtype == np.uint8
    (image,) = result.images
    assert np.array_equal(image.image, steps[-1].preview)
    assert image.seed == 5 and "Trained LoRA: job-lora" in image.infotext
    assert (lora_dir / "job-lora.safetensors").is_file()
    assert not (lora_dir / "job-lora.train-state").exists()
    assert "job-lora" in train_engine.capabilities()["loras"]  # found at once
    after = unet.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        ("missing", ErrorCode.DATASET_EMPTY, "no training folder 'missing'"),
        ("../thing", ErrorCode.DATASET_EMPTY, "refused"),
        ("broken", ErrorCode.DATASET_UNREADABLE, "bad.png"),
    ],
)
def test_bad_training_folders_get_clear_errors(train_engine, train_root, data, code, words):
    broken = train_root / "training" / "broken" / "2_x"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")
    with pytest.raises(DreamwireError) as err:
        train_engine.run(_job(data, "never"))
    assert err.value.code is code and words in err.value.message
    assert not list((train_root / "models").rglob("never*"))


def test_the_job_settings_are_checked_and_travel():
    job = _job("thing", "mine", learning_rate=5e-4).validate()
    body, arrays = job.to_wire()
    assert body["mode"] == "train_lora" and body["train_lora"]["learning_rate"] == 5e-4
    assert Job.from_wire(body, arrays).validate().train_lora == job.train_lora
    assert "train_lora" not in Job(prompt="x").to_wire()[0]  # other bodies as before

    def refused(**kw):
        with pytest.raises(DreamwireError) as err:
            Job(**{"prompt": "x", "width": 32, "height": 32, **kw}).validate()
        assert err.value.code is ErrorCode.INVALID_JOB
        return err.value.message

    assert "needs its train_lora settings" in refused(mode="train_lora")
    assert "send mode train_lora" in refused(train_lora=LoraTraining(data="a", name="b"))
    assert "train_lora.network_dim" in refused(
        mode="train_lora", train_lora=LoraTraining(data="a", name="b", network_dim=0)
    )
    assert "train_lora.resolution" in refused(
        mode="train_lora", train_lora=LoraTraining(data="a", name="b", resolution=30)
    )
    with pytest.raises(DreamwireError) as err:
        Job.from_wire({**body, "train_lora": {**body["train_lora"], "epochs": 3}}, arrays)
    assert "epochs" in err.value.message
