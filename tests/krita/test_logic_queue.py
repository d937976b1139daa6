"""The docker's queue, seed rule and progress text, without Krita."""

from __future__ import annotations

import random

from dreamwire_krita.logic import progress as prog
from dreamwire_krita.logic import queue as jq
from dreamwire_krita.logic.params import Params


def test_fixed_seed_repeats_and_random_differs_per_queued_job():
    rng = random.Random(5)
    assert [jq.job_seed(21, True, rng) for _ in range(3)] == [21, 21, 21]
    seeds = [jq.job_seed(21, False, rng) for _ in range(4)]
    assert len(set(seeds)) == 4 and all(0 <= s <= 2**31 - 1 for s in seeds)
    # "random" (-1) is never sent as a fixed seed.
    assert jq.job_seed(-1, True, rng) >= 0


def test_stored_params_before_the_toggle_keep_their_meaning():
    assert Params.from_dict({"seed": 21}).fixed_seed is True
    assert Params.from_dict({"seed": -1}).fixed_seed is False
    assert Params.from_dict({"seed": 21, "fixed_seed": False}).fixed_seed is False
    assert Params.from_dict({"seed": "x"}).fixed_seed is False
    assert Params.from_dict(Params(seed=3, fixed_seed=False).to_dict()).fixed_seed is False
    # A first press generates: Krita AI Diffusion's 100% default.
    assert Params().strength == 1.0


def _job(i, stage, ahead=None, action="generate", prompt="a lighthouse"):
    return jq.QueuedJob(f"j{i}", action, prompt, 100 + i, stage, ahead)


def test_queue_lists_what_waits_and_what_runs_and_counts_them():
    jobs = [
        _job(1, "generating"),
        _job(2, "queued", ahead=1),
        _job(3, "sent"),
        _job(4, "generating", action="live"),  # Live's own job: not the artist's queue
        _job(5, "queued", action="inpaint", prompt="  a   very long prompt " * 4, ahead=2),
    ]
    shown = jq.entries(jobs)
    assert [e.job_id for e in shown] == ["j1", "j2", "j3", "j5"]
    assert [e.running for e in shown] == [True, False, False, False]
    assert shown[0].text == "Generate “a lighthouse”, seed 101: generating"
    assert shown[1].text.endswith("seed 102: waiting, 1 ahead")
    assert shown[2].text.endswith("seed 103: waiting")
    trains = jq.entries([_job(6, "training", action="train_lora", prompt="mychar")])
    assert trains[0].text == "Train lora “mychar”, seed 106: training"
    prompt = shown[3].text.split("“")[1].split("”")[0]
    assert prompt.startswith("a very long prompt a") and len(prompt) == jq.PROMPT_CHARS
    assert shown[3].text.startswith("Inpaint") and "2 ahead" in shown[3].text
    assert jq.label(shown) == "Queue 4 (3 waiting)"
    assert jq.label(shown[:1]) == "Queue 1"
    assert jq.label([]) == "Queue"


def test_progress_reads_steps_and_eta_and_decoding_keeps_the_bar_full():
    v = prog.view("generating", 12, 20, 8.4)
    assert (v.text, v.value, v.maximum) == ("Step 12/20 · ~8 s left", 12, 20)
    assert prog.view("generating", 3, 20, None).text == "Step 3/20"
    assert prog.view("generating", 30, 20, None).value == 20  # never past the end
    d = prog.view("decoding", 0, 20, None)
    assert d.text == "Decoding…" and d.value == d.maximum  # not back to 0%
    assert prog.view("loading_model", 0, 0, None, "sd15.safetensors").text == (
        "Loading the model: sd15.safetensors"
    )
    assert prog.view("queued", 0, 0, None, "queued (2 ahead)").text == "Queued: queued (2 ahead)"
    assert prog.eta_text(125) == "~2 min 05 s left"


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_eta_from_step_time_not_from_model_loading():
    clock = Clock()
    sc = prog.StepClock(clock)
    assert sc.observe("a", "loading_model", 0, 0) is None
    clock.t += 30  # loading took 30 s: not step time
    assert sc.observe("a", "generating", 1, 20) is None  # one point: no rate yet
    clock.t += 2
    assert sc.observe("a", "generating", 3, 20) == 17.0  # 1 s a step, 17 to go
    clock.t += 6
    assert sc.observe("a", "generating", 9, 20) == 11.0
    # A second pass (Hires.fix counts its own steps) or another job starts over.
    clock.t += 1
    assert sc.observe("a", "generating", 1, 10) is None
    assert sc.observe("b", "generating", 5, 20) is None
    clock.t += 4
    assert sc.observe("b", "generating", 7, 20) == 26.0
