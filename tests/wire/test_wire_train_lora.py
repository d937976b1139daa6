"""A train_lora job through a real backend process: the queue runs a generation sent behind
it only after it ends, on the UNet as it was (bit for bit); progress carries step, loss, ETA
and sample previews; a backend killed mid-training goes on from the saved state when it
restarts, and a cancel ends the job with its state kept for a resume. The queued training
carries its own pictures (as a host sends layers or renders); the killed one names a
training folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from dreamwire.backend.training.state import load_state
from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import LoraTraining, TrainingPicture
from tests.support.wire import collect, ended, small_job

SD1 = Path("models") / "Stable-diffusion" / "tiny-sd1.safetensors"


@pytest.fixture
def train_models(tiny_models, tmp_path):
    """A model root of its own: the tiny SD1 file and training/thing/5_thing with two
    pictures, so the LoRAs made here stay out of the shared library."""
    root = tmp_path / "root"
    (root / SD1).parent.mkdir(parents=True)
    shutil.copyfile(tiny_models / SD1, root / SD1)
    folder = root / "training" / "thing" / "5_thing"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _train(name: str, steps: int, **kw) -> Job:
    settings = dict(network_dim=2, resolution=32, max_train_steps=steps, **kw)
    if "pictures" not in settings:
        settings["data"] = "thing"
    return Job(
        mode="train_lora",
        prompt="a red thing",
        steps=1,
        width=32,
        height=32,
        seed=3,
        sampler="Euler",
        train_lora=LoraTraining(name=name, **settings),
    )


def _mine(job_id):
    return lambda e: getattr(e, "job_id", None) == job_id


def _training_steps(events, job_id):
    return [
        e.progress
        for e in events
        if isinstance(e, ev.ProgressEvent) and e.job_id == job_id and e.progress.state == "training"
    ]


def test_training_holds_the_queue_and_gives_the_unet_back(backend_factory, train_models):
    backend = backend_factory(models=[train_models])
    c = Client(backend.address)
    try:
        c.connect_wait(60)
        # The welcome says which families train (SD1.x and SDXL).
        assert "train_lora" in c.welcome.families["sd1"].supports
        assert "train_lora" in c.welcome.families["sdxl"].supports
        assert "train_lora" not in c.welcome.families["flux"].supports
        picture = small_job(width=32, height=32, steps=1, seed=9)
        before = c.run(picture, timeout=120).images[0].image

        # The training carries its own pictures (a host's layers: RGBA, alpha dropped), one
        # captioned; bad ones are refused by name before anything runs.
        rng = np.random.default_rng(4)
        rgba = (rng.random((40, 48, 4)) * 255).astype(np.uint8)
        rgb = (rng.random((48, 40, 3)) * 255).astype(np.uint8)
        pictures = [TrainingPicture(rgba, "mychar, red coat"), TrainingPicture(rgb)]
        for bad, code, words in [
            (rgb[:4, :4], "invalid_size", "train_lora.pictures[1].image"),
            (rgb[..., :1], "invalid_image", "one channel"),
            (rgb.astype(np.float32), "invalid_image", "train_lora.pictures[1].image"),
        ]:
            with pytest.raises(DreamwireError) as err:
                c.run(_train("never", 1, pictures=[pictures[0], TrainingPicture(bad)]), 60)
            assert err.value.code.value == code and words in err.value.message

        train = c.submit(_train("queued", 3, sample_every_n_steps=1, pictures=pictures, repeats=2))
        # An interactive job does not stop a running training (the single worker's queue
        # orders waiting jobs only): it waits, and the training ends whole.
        after = c.submit(small_job(width=32, height=32, steps=1, seed=9, priority="interactive"))
        events = collect(c, lambda es: ended(train)(es) and ended(after)(es))

        assert f"job {train}: queued (batch priority" in backend.log_text()
        waiting = next(e for e in events if isinstance(e, ev.Accepted) and e.job_id == after)
        assert waiting.position >= 1  # queued behind the training
        order = [e.job_id for e in events if isinstance(e, ev.ProgressEvent | ev.ResultEvent)]
        assert after not in order[: max(i for i, j in enumerate(order) if j == train)]
        steps = _training_steps(events, train)
        assert [p.step for p in steps] == [1, 2, 3] and {p.total for p in steps} == {3}
        assert all(p.loss > 0 and p.eta >= 0 and p.preview is not None for p in steps)
        (result,) = [
            e.result for e in events if isinstance(e, ev.ResultEvent) and e.job_id == train
        ]
        assert result.images[0].image.shape == (32, 32, 3)
        lora = train_models / "models" / "Lora" / "queued.safetensors"
        with safe_open(str(lora), "pt") as f:
            meta = f.metadata()
        # Both pictures, 2 repeats, in a folder named for the LoRA, the caption kept; the
        # backend's copy (OUT/training) is gone once the LoRA is whole.
        dirs = {"2_queued": {"n_repeats": 2, "img_count": 2}}
        assert json.loads(meta["ss_dataset_dirs"]) == dirs
        tags = json.loads(meta["ss_tag_frequency"])["2_queued"]
        assert tags == {"mychar": 1, "red coat": 1, "queued": 1}
        assert not list((backend.out_dir / "training").iterdir())
        (gen,) = [e.result for e in events if isinstance(e, ev.ResultEvent) and e.job_id == after]
        assert np.array_equal(gen.images[0].image, before)  # the UNet came back bit for bit
    finally:
        c.close()


def test_a_killed_backend_resumes_training_and_a_cancel_keeps_the_state(
    backend_factory, train_models
):
    backend = backend_factory(models=[train_models])
    state_file = train_models / "models" / "Lora" / "long.train-state"
    c = Client(backend.address, heartbeat_timeout=1.0)
    try:
        c.connect_wait(60)
        job_id = c.submit(_train("long", 100_000, save_every_n_steps=1))
        collect(c, lambda es: any(p.step >= 3 for p in _training_steps(es, job_id)))
        backend.kill()  # no stop handler runs: only the scheduled saves are on disk
        saved = load_state(state_file).step
        assert saved >= 2
        backend.start()  # the job comes back from the queue folder, as the same job

        events = collect(c, lambda es: bool(_training_steps(es, job_id)))
        # It went on from the saved step. The client may miss a few steps' progress while it
        # reconnects (a loaded machine), so the backend's log says where the run resumed.
        assert f"training long resumes after step {saved}" in backend.log_text()
        assert _training_steps(events, job_id)[0].step > saved
        c.cancel(job_id)
        events = collect(c, ended(job_id))
        assert any(isinstance(e, ev.Cancelled) for e in filter(_mine(job_id), events))
        assert load_state(state_file).step > saved  # stopped, and its state kept
        assert not (train_models / "models" / "Lora" / "long.safetensors").exists()
    finally:
        c.close()
