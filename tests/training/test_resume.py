"""Resume: a run stopped after 2 steps and resumed for 2 more writes the very LoRA a run of
4 straight steps writes (same process, same thread count: bit for bit); the state is saved
on a schedule and on every stop, and a stopped run's state is never overwritten unasked.
Last, training on a UNet the GPU fast path has fused (q/k/v in one projection; the fusion is
device-agnostic module surgery, so the CPU shows it): every projection's LoRA still learns
and the fused attention is given back. It runs last in this module, on the module's one
engine, as it leaves that UNet fused."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import FusedAttnProcessor2_0
from safetensors.torch import load_file

from dreamwire.backend.engine.fastpath import fuse_qkv
from dreamwire.backend.training.dataset import read_dataset
from dreamwire.backend.training.loop import train_lora
from dreamwire.backend.training.options import LoraTrainOptions
from dreamwire.backend.training.run import TrainRequest, run_training
from dreamwire.backend.training.state import load_state
from dreamwire.shared.errors import DreamwireError, ErrorCode

OPTIONS = LoraTrainOptions(
    network_dim=2, network_alpha=2.0, learning_rate=1e-2, max_train_steps=4, resolution=32
)


class _Stop(Exception):
    pass


def _stop_at(step):
    def on_step(report):
        if report.step == step:
            raise _Stop

    return on_step


def _request(data, lora_dir, name, **kw):
    return TrainRequest(data=data, name=name, lora_dir=lora_dir, options=OPTIONS, **kw)


def test_stop_and_resume_gives_the_uninterrupted_runs_weights(train_engine, train_root, two_images):
    lora_dir = train_root / "models" / "Lora"
    straight = run_training(train_engine, _request(two_images, lora_dir, "straight"))

    with pytest.raises(_Stop):
        run_training(train_engine, _request(two_images, lora_dir, "resumed"), _stop_at(2))
    state_file = lora_dir / "resumed.train-state"
    assert not (lora_dir / "resumed.safetensors").exists()
    assert load_state(state_file).step == 2

    # A new run of that name does not throw the stopped one's state away unasked.
    with pytest.raises(DreamwireError) as err:
        run_training(train_engine, _request(two_images, lora_dir, "resumed"))
    assert err.value.code is ErrorCode.INVALID_JOB and "resume" in err.value.message
    assert load_state(state_file).step == 2

    steps = []
    resumed = run_training(
        train_engine, _request(two_images, lora_dir, "resumed", resume=True), steps.append
    )
    assert [s.step for s in steps] == [3, 4]  # the step count goes on
    assert resumed.losses == straight.losses[2:]
    a, b = load_file(str(straight.path)), load_file(str(resumed.path))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not state_file.exists()  # the LoRA is whole: its state is gone


def test_state_is_saved_every_n_steps_and_resume_needs_one(train_engine, train_root, two_images):
    lora_dir = train_root / "models" / "Lora"
    seen = []

    def on_step(report):
        # The scheduled save happens before the step is reported.
        path = lora_dir / "every.train-state"
        seen.append(load_state(path).step if path.exists() else None)

    request = _request(two_images, lora_dir, "every", save_every_n_steps=2)
    run_training(train_engine, request, on_step)
    assert seen == [None, 2, 2, 2]

    with pytest.raises(DreamwireError) as err:
        run_training(train_engine, _request(two_images, lora_dir, "nothing", resume=True))
    assert err.value.code is ErrorCode.INVALID_JOB and "no saved state" in err.value.message


def test_resume_refuses_changed_options(train_engine, train_root, two_images):
    lora_dir = train_root / "models" / "Lora"
    with pytest.raises(_Stop):
        run_training(train_engine, _request(two_images, lora_dir, "changed"), _stop_at(1))
    other = LoraTrainOptions(**{**vars(OPTIONS), "network_dim": 4})
    request = TrainRequest(
        data=two_images, name="changed", lora_dir=lora_dir, options=other, resume=True
    )
    with pytest.raises(DreamwireError) as err:
        run_training(train_engine, request)
    assert err.value.code is ErrorCode.INVALID_JOB and "network_dim" in err.value.message


def _fused(unet) -> int:
    return sum(
        isinstance(getattr(m, "processor", None), FusedAttnProcessor2_0) for m in unet.modules()
    )


def test_last_a_fused_unet_trains_every_projection_and_stays_fused(train_engine, two_images):
    components = train_engine.load("tiny-sd1").components
    unet = components["unet"]
    fused = fuse_qkv(unet)
    assert fused > 0 and _fused(unet) == fused
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    options = LoraTrainOptions(
        network_dim=2, learning_rate=1e-2, max_train_steps=2, resolution=32, seed=1
    )
    result = train_lora(components, read_dataset(two_images), options)
    ups = {k: v for k, v in result.lora_state.items() if ".lora_B." in k}
    for proj in ("to_q", "to_k", "to_v", "to_out.0"):
        mine = [v for k, v in ups.items() if f".{proj}.lora_B." in k]
        assert mine and all(v.abs().max() > 0 for v in mine), proj  # each one learned
    assert _fused(unet) == fused
    after = unet.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
