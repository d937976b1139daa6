"""The conditioners together (engine/conditioners.py, conditioning.engine_extensions):
every kind in one job, the pipeline chosen from what they add, each kind's step hook
registered by name for its passes, and the model exactly as it was after the job."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
from cn_helpers import BASE, maxdiff, noise_image

from dreamwire.backend.engine import Conditioner, PassPart
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import ControlUnit, HiresFix, Job

CANNY = ControlUnit(type="canny", image=noise_image(41), model="control_v11p_sd15_canny")
DEPTH = ControlUnit(type="depth", image=noise_image(42), model="t2iadapter_depth_sd14v1", end=0.5)
IP = ControlUnit(type="ip-adapter", image=noise_image(43, 32, 32), model="ip-adapter_sd15")
UNIT_HOOKS = ("conditioning.ip_adapter", "conditioning.t2i_adapter", "conditioning.controlnet")


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **kw})


class PassSpy(Conditioner):
    """Records, at every step, the pass's mode, its pipeline and the step hooks by name."""

    name = "test.spy"

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, tuple[str, ...]]] = []

    def resolve(self, ctx):
        return True

    @contextmanager
    def attach(self, ctx, resolved, mode):
        def hook(ctx_, pipe, step, total, tensors):
            self.steps.append((mode, type(pipe).__name__, tuple(ctx_.step_hooks.names())))

        yield PassPart(step_hook=hook)


def _state(components) -> dict:
    unet = components["unet"]
    return {
        "weights": {
            (name, k): v.clone()
            for name in ("unet", "text_encoder")
            for k, v in components[name].state_dict().items()
        },
        "processors": {k: type(v) for k, v in unet.attn_processors.items()},
        "hooks": dict(unet._forward_pre_hooks),
        "proj": unet.encoder_hid_proj,
    }


def _same(a: dict, b: dict) -> bool:
    weights = a["weights"].keys() == b["weights"].keys() and all(
        torch.equal(v, b["weights"][k]) for k, v in a["weights"].items()
    )
    return weights and all(a[k] == b[k] for k in ("processors", "hooks", "proj"))


@pytest.fixture
def spy(engine, monkeypatch) -> PassSpy:
    spy = PassSpy()
    monkeypatch.setattr(engine, "extensions", [*engine.extensions, spy])
    return spy


def test_every_kind_in_one_job_then_the_model_as_it_was(engine, seen, spy):
    components = engine.load("tiny-sd1").components
    base = engine.run(job()).images[0].image
    before = _state(components)
    spy.steps.clear()
    out = engine.run(
        job(
            prompt=BASE["prompt"] + " <lora:tiny_style:0.8>",
            controls=[CANNY, DEPTH, IP],
            hires=HiresFix(scale=2.0, denoise=0.5),
        )
    )
    image = out.images[0]
    assert image.image.shape == (128, 128, 3) and maxdiff(image.image[::2, ::2], base) > 5
    # The recorder keeps each kind's last stack: ControlNet and T2I-Adapter stacks are the
    # Hires.fix pass's (A1111 runs all 4 of its steps), the IP-Adapter's the job's (4 + 4
    # steps). The depth adapter ends at 0.5: the ControlNet extension skips a pass's steps
    # past half of it (step 3 of 4 is at 0.75).
    assert seen.calls["controlnet"] == [[True]] * 4
    assert seen.calls["t2i_adapter"] == [[True]] * 3 + [[False]]
    assert seen.calls["ip_adapter"] == [[True]] * 8
    # One ControlNet pipeline per pass; every kind's hook by its name, for every step.
    modes = [(mode, pipe) for mode, pipe, _ in spy.steps]
    assert (
        modes
        == [("txt2img", "StableDiffusionControlNetPipeline")] * 4
        + [("img2img", "StableDiffusionControlNetImg2ImgPipeline")] * 4
    )
    assert {names for _, _, names in spy.steps} == {(*UNIT_HOOKS, "test.spy")}
    # The units in the job's order (A1111 numbers every kind as a ControlNet), then LoRA.
    text = image.infotext
    places = [text.index(f"ControlNet {i}: ") for i in range(3)] + [text.index("Lora hashes")]
    assert places == sorted(places)
    assert "ip-adapter_sd15" in text and "t2iadapter_depth_sd14v1" in text
    # Weights, processors, hooks and projection exactly as before: the next job is the base.
    assert _same(_state(components), before)
    assert np.array_equal(engine.run(job()).images[0].image, base)


def test_adapters_alone_run_the_plain_pipeline(engine, seen, spy):
    engine.run(job(controls=[DEPTH, IP]))
    assert {pipe for _, pipe, _ in spy.steps} == {"StableDiffusionPipeline"}
    assert {names for _, _, names in spy.steps} == {(*UNIT_HOOKS[:2], "test.spy")}
    assert "controlnet" not in seen.calls


def test_a_refused_unit_leaves_nothing_attached(engine, spy):
    """Every conditioner resolves before any attaches: the LoRA is never patched, no pass
    starts, when a later unit is refused."""
    components = engine.load("tiny-sd1").components
    before = _state(components)
    wrong = ControlUnit(type="canny", image=noise_image(44), model="ip-adapter_sd15")
    with pytest.raises(DreamwireError):
        engine.run(job(prompt=BASE["prompt"] + " <lora:tiny_style:0.8>", controls=[IP, wrong]))
    assert spy.steps == []
    assert _same(_state(components), before)
