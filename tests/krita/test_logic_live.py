"""Live mode's plain logic: change detection, debounce, supersede, and the live job."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import numpy as np
import pytest
from dreamwire_krita.logic import live
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.jobs import refine_job
from dreamwire_krita.logic.live import LayerSample, LiveState, fingerprint
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import plan_refine

from dreamwire.shared.events import Welcome
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import PRIORITIES, ControlUnit, LoraRef
from tests.support.engines import cpu_engine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def layers(paint: bytes = b"\0" * 16, preview: bytes = b"p" * 16) -> list[LayerSample]:
    return [
        LayerSample("bg", True, 255, "normal", b"\xff" * 16),
        LayerSample("paint", True, 255, "normal", paint),
        LayerSample("prev", True, 255, "normal", preview),
    ]


def test_fingerprint_sees_paint_and_parameters_but_not_the_preview_layer():
    base = fingerprint(layers(), "prev", {"prompt": "fox"})
    assert fingerprint(layers(preview=b"q" * 16), "prev", {"prompt": "fox"}) == base
    assert fingerprint(layers(paint=b"\1" + b"\0" * 15), "prev", {"prompt": "fox"}) != base
    assert fingerprint(layers(), "prev", {"prompt": "cat"}) != base
    # Hiding a layer or changing its opacity changes what the job reads.
    hidden = layers()
    hidden[1] = LayerSample("paint", False, 255, "normal", b"\0" * 16)
    assert fingerprint(hidden, "prev", {"prompt": "fox"}) != base
    # Without a preview layer id, every layer counts.
    assert fingerprint(layers(), None, {"prompt": "fox"}) != base


def test_change_waits_for_the_debounce_then_submits_once():
    clock = Clock()
    st = LiveState(clock=clock, debounce=0.4)
    assert st.observe("a") == live.NOTHING  # first sight: a change
    clock.now += 0.2
    assert not st.observe("a").submit  # still settling
    clock.now += 0.25
    d = st.observe("a")
    assert d.submit and d.cancel is None
    st.submitted("job1", "a")
    # Unchanged canvas: nothing more, however long it stays so.
    for _ in range(5):
        clock.now += 1.0
        assert st.observe("a") == live.NOTHING


def test_painting_keeps_resetting_the_debounce():
    clock = Clock()
    st = LiveState(clock=clock, debounce=0.4)
    for i in range(6):  # a stroke: a new fingerprint every 0.1 s
        assert not st.observe(f"s{i}").submit
        clock.now += 0.1
    assert not st.observe("s5").submit  # 0.1 s after the last change
    clock.now += 0.35
    assert st.observe("s5").submit


def test_new_change_while_running_cancels_and_resubmits():
    clock = Clock()
    st = LiveState(clock=clock, debounce=0.4)
    st.observe("a")
    clock.now += 0.5
    assert st.observe("a").submit
    st.submitted("job1", "a")
    clock.now += 0.1
    st.observe("b")  # the artist paints while job1 runs
    clock.now += 0.5
    d = st.observe("b")
    assert d.submit and d.cancel == "job1"
    st.submitted("job2", "b")
    # job1's result arrives anyway (the cancel lost the race): not shown.
    assert st.finished("job1") is False
    assert st.is_current("job2")
    assert st.finished("job2") is True and st.job_id is None
    # Finished and unchanged: nothing to cancel, nothing to send.
    clock.now += 1
    assert st.observe("b") == live.NOTHING


def test_back_to_an_earlier_drawing_after_a_job_still_submits():
    clock = Clock()
    st = LiveState(clock=clock, debounce=0.4)
    st.observe("a")
    clock.now += 0.5
    st.observe("a")
    st.submitted("j1", "a")
    st.observe("b")
    clock.now += 0.1
    st.observe("a")  # undo before the debounce ran out: same as what was sent
    clock.now += 1
    assert st.observe("a") == live.NOTHING


def test_failed_submit_waits_for_a_change_and_new_seed_resends():
    clock = Clock()
    st = LiveState(clock=clock, debounce=0.4)
    st.observe("a")
    clock.now += 0.5
    assert st.observe("a").submit
    st.failed("a")
    clock.now += 1
    assert not st.observe("a").submit
    st.invalidate()
    assert st.observe("a").submit
    st.reset()
    assert st.seen is None and st.job_id is None


P = Params(prompt="a fox", model="tiny-sd1", sampler="Euler a", steps=30, cfg=7.0, seed=-1)
P.batch = 3


def _refine():
    plan = plan_refine(Rect(0, 0, 64, 64), None)
    canvas = np.full((64, 64, 4), 200, np.uint8)
    unit = ControlUnit(type="canny", image=np.zeros((64, 64, 3), np.uint8))
    return refine_job(P, plan, canvas, [unit])


def welcome(samplers=("Euler a", "LCM"), loras=(), priorities=None):
    return Welcome(
        protocol=1,
        server_version="",
        server_id="",
        samplers=list(samplers),
        loras=list(loras),
        priorities=[] if priorities is None else list(priorities),
    )


def test_live_sampling_uses_lcm_with_the_family_lora():
    w = welcome(loras=["detail", "lcm-lora-sdxl", "lcm-lora-sdv1-5"])
    s = live.live_sampling("Euler a", 7.0, "tiny-sd1", w, "sd1")
    assert (s.sampler, s.steps, s.cfg, s.loras) == ("LCM", 6, 1.8, ("lcm-lora-sdv1-5",))
    s = live.live_sampling("Euler a", 7.0, "tiny-sdxl", w, "sdxl")
    assert s.loras == ("lcm-lora-sdxl",)
    # No family's LCM-LoRA fits another's: a Flux model runs without LCM.
    s = live.live_sampling("Euler", 1.0, "flux1-dev", w, "flux")
    assert (s.sampler, s.loras) == ("Euler", ())
    # An LCM-distilled checkpoint needs no LoRA.
    s = live.live_sampling("Euler a", 7.0, "dreamshaper-lcm", welcome(), "sd1")
    assert (s.sampler, s.loras) == ("LCM", ())


def test_live_sampling_without_lcm_keeps_the_panels_sampler_with_few_steps():
    s = live.live_sampling("Euler a", 7.0, "tiny-sd1", welcome(), "sd1")
    assert (s.sampler, s.steps, s.cfg, s.loras) == ("Euler a", live.PLAIN_STEPS, 7.0, ())
    # No SD1 LCM LoRA for an SD1 model, or no LCM sampler on the backend.
    s = live.live_sampling("Euler a", 7.0, "m", welcome(loras=["lcm-lora-sdxl"]), "sd1")
    assert s.sampler == "Euler a"
    s = live.live_sampling("Euler a", 7.0, "m", welcome(("Euler a",), ["lcm-lora-sdv1-5"]), "sd1")
    assert s.sampler == "Euler a"


def test_live_job_fields():
    w = welcome(loras=["lcm-lora-sdv1-5"], priorities=PRIORITIES)
    sampling = live.live_sampling("Euler a", 7.0, "tiny-sd1", w, "sd1")
    job = live.live_job(_refine(), sampling, live.LIVE_STRENGTH, 1234)
    assert job.mode == "img2img" and job.strength == 0.3 == live.LIVE_STRENGTH
    assert (job.sampler, job.steps, job.cfg, job.seed, job.batch) == ("LCM", 6, 1.8, 1234, 1)
    assert job.loras == [LoraRef("lcm-lora-sdv1-5")]
    assert job.priority == "live" and PRIORITIES[job.priority] == min(PRIORITIES.values())
    assert job.preview_every == 0 and job.tag == "krita:live"
    # What the refine builder gathered stays: the control unit, the canvas, the size.
    assert [u.type for u in job.controls] == ["canny"]
    assert (job.width, job.height) == (64, 64) and job.init_image.shape == (64, 64, 3)
    # The same seed every time: only the drawing changes the result.
    again = live.live_job(_refine(), sampling, 0.3, 1234)
    assert again.seed == job.seed and again.job_id != job.job_id


def test_new_seed_is_a_fixed_non_negative_seed():
    import random

    rng = random.Random(5)
    seeds = {live.new_seed(rng) for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s <= live.SEED_MAX for s in seeds)


def test_live_priority_only_where_the_backend_lists_it():
    assert live.live_priority(welcome(priorities=PRIORITIES)) == "live"
    # An older backend: no `priorities` in its welcome, or no "live" among them.
    assert live.live_priority(welcome()) == "interactive"
    assert live.live_priority(welcome(priorities=["interactive", "normal"])) == "interactive"
    assert live.live_priority(None) == "interactive"
    old = live.live_sampling("Euler a", 7.0, "tiny-sd1", welcome(loras=["lcm-lora-sdv1-5"]), "sd1")
    assert live.live_job(_refine(), old, 0.3, 1).priority == "interactive"


# -- the LCM path on the tiny backend ----------------------------------------------------


@pytest.fixture(scope="module")
def engine(library):
    return cpu_engine(library)


def _addnet(path) -> str:
    """A1111's LoRA short hash: sha256 of a .safetensors file after its header."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length :]).hexdigest()[:12]


def test_live_job_runs_lcm_with_the_tiny_lcm_lora(engine, tiny_models):
    """The backend's own listing makes Live pick LCM and the SD1 LCM-LoRA; the engine runs
    it and its infotext says so, with the LoRA's A1111 hash."""
    from diffusers import UNet2DConditionModel

    from dreamwire.backend.conditioning import lora
    from dreamwire.backend.tiny.files import unet_config

    caps = engine.capabilities()
    w = Welcome.from_body(
        {"protocol": 1, "server_version": "", "server_id": "", "priorities": list(PRIORITIES)}
        | {k: caps[k] for k in ("samplers", "loras", "models")}
    )
    sampling = live.live_sampling("Euler a", 7.0, "tiny-sd1", w, "sd1")
    assert (sampling.sampler, sampling.loras) == ("LCM", ("lcm-lora-sdv1-5",))
    # The tiny file is laid out like the real one: every module it holds is a layer of SD1.
    path = tiny_models / "models" / "Lora" / "lcm-lora-sdv1-5.safetensors"
    unet = UNet2DConditionModel.from_config(unet_config("tiny-sd1"))
    table = lora.module_table(unet, "unet", dict(unet.config))
    modules = lora.read(path).modules
    assert len(modules) > 50 and all(table.get(m.name) is not None for m in modules)
    refine = refine_job(P, plan_refine(Rect(0, 0, 64, 64), None), _canvas(), [])
    job = live.live_job(refine, sampling, live.LIVE_STRENGTH, 77)
    assert job.priority == "live"
    image = engine.run(job).images[0]
    info = parse_infotext(image.infotext)
    assert "Sampler: LCM" in image.infotext and info.steps == 6
    assert info.lora_hashes == {"lcm-lora-sdv1-5": _addnet(path)}
    # The LoRA's weights took part: the same job without it gives other pixels.
    plain = live.live_job(
        refine_job(P, plan_refine(Rect(0, 0, 64, 64), None), _canvas(), []),
        dataclasses.replace(sampling, loras=()),
        live.LIVE_STRENGTH,
        77,
    )
    other = engine.run(plain).images[0]
    assert "Lora hashes" not in other.infotext
    assert not np.array_equal(np.asarray(other.image), np.asarray(image.image))


def _canvas():
    rng = np.random.default_rng(5)
    canvas = rng.integers(0, 255, (64, 64, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    return canvas
