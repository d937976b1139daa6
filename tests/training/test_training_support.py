"""What a backend says about LoRA training and how it treats a training job before it runs:
the families that train (the welcome's `supports`), a refusal at plan time on any other
family in the words the hosts use, the batch class a training job queues in, and a model
watch that does not rescan for training's own files."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.engine import planning
from dreamwire.backend.families import family_infos
from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.server.jobqueue import JobQueue
from dreamwire.backend.server.model_watch import ModelWatch, fingerprint
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.family_support import check_job, model_info
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import LoraTraining

# What this backend's welcome says of its families, for two of the suite's tiny models.
FAMILIES = {"tiny-sd1": "sd1", "tiny-sdxl": "sdxl", "tiny-flux": "flux"}
WELCOME = Welcome.from_body({"protocol": 1, "model_families": FAMILIES, "families": family_infos()})


def _train(model: str = "", **kw) -> Job:
    return Job(
        mode="train_lora",
        model=model,
        prompt="a red thing",
        steps=1,
        width=32,
        height=32,
        train_lora=LoraTraining(data="missing", name="never", network_dim=2, resolution=32),
        **kw,
    )


def test_the_welcome_says_which_families_train():
    trains = {key for key, info in WELCOME.families.items() if "train_lora" in info.supports}
    assert trains == {"sd1", "sdxl"}


def test_a_training_job_on_another_family_is_refused_at_plan_time_in_the_hosts_words(
    tiny_models, flux_root
):
    library = ModelLibrary([tiny_models, flux_root])
    job = _train("tiny-flux")
    with pytest.raises(DreamwireError) as host:
        check_job(job, model_info("tiny-flux", WELCOME))
    # At plan time: the folder named (there is none) is never looked for, nothing loads.
    with pytest.raises(DreamwireError) as backend:
        planning.plan(job, library)
    assert host.value.code is ErrorCode.MODEL_UNSUPPORTED is backend.value.code
    assert host.value.message == backend.value.message
    assert backend.value.message.startswith(
        "Flux.1 models: LoRA training is built for SD1.x and SDXL"
    )
    for name, family in (("tiny-sd1", "sd1"), ("tiny-sdxl", "sdxl")):
        ok = _train(name)
        assert check_job(ok, model_info(name, WELCOME)) is ok
        assert planning.plan(ok, library).family == family


def test_a_training_job_queues_as_batch_unless_it_says_otherwise():
    train = _train()
    assert train.priority == "batch" and Job().priority == "normal"
    assert _train(priority="interactive").priority == "interactive"
    body, arrays = train.to_wire()
    assert body["priority"] == "batch"  # an older backend reads a class it knows
    del body["priority"]  # a host that leaves it out gets the mode's class on arrival
    assert Job.from_wire(body, arrays).validate().priority == "batch"

    queue = JobQueue()
    queue.put(train)
    normal, interactive = Job(), Job(priority="interactive")
    queue.put(normal)
    queue.put(interactive)
    taken = [queue.take(0.1).job for _ in range(3)]
    assert taken == [interactive, normal, train]


def _write(path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_the_model_watch_ignores_training_files_and_sees_the_trained_lora(tmp_path):
    root = tmp_path / "root"
    lora = root / "models" / "Lora"
    _write(lora / "old.safetensors")
    before = fingerprint([root])
    _write(lora / "mine.train-state")
    _write(lora / "mine.train-state.partial")
    picture = root / "training" / "thing" / "5_thing" / "0.png"
    picture.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
    assert fingerprint([root]) == before
    _write(root / "models" / "training" / "x.safetensors")  # a model folder's own: watched
    assert fingerprint([root]) != before

    rescans: list[float] = []
    done = threading.Event()
    watch = ModelWatch([root], 0.05, lambda: (rescans.append(time.monotonic()), done.set()))
    watch.start()
    try:
        for step in range(5):  # a run saving its state every step, new pictures coming in
            _write(lora / "mine.train-state", bytes([step]) * (step + 1))
            _write(picture.parent / f"{step}.txt", b"a caption")
            time.sleep(0.1)
        assert rescans == [] and not watch.take()
        _write(lora / "mine.safetensors")  # the trained LoRA lands
        assert done.wait(10), "the trained LoRA was not noticed"
        assert len(rescans) == 1
    finally:
        watch.stop()
