"""Prompt editing: the engine swaps the embeddings inside diffusers' loop at the scheduled
step, exactly as a diffusers callback doing the same swap by hand."""

from __future__ import annotations

import numpy as np
import torch
from reference import maxdiff, reference_pipe, to_uint8

from dreamwire.backend.engine import prompting
from dreamwire.shared.job import Job


def _embeds(pipe, text: str, negative: str):
    with torch.inference_mode():
        cond, uncond = pipe.encode_prompt(text, pipe.device, 1, True, negative)
    return cond, uncond


def _reference(pipe, cat, neg, steps: int, swap=None) -> np.ndarray:
    """diffusers from the `cat` embeddings, seed 8; `swap`, where given, is the step-end
    callback that changes the prompt embeddings by hand."""
    callback = {}
    if swap is not None:
        callback = dict(
            callback_on_step_end=swap, callback_on_step_end_tensor_inputs=["prompt_embeds"]
        )
    with torch.inference_mode():
        images = pipe(
            prompt_embeds=cat,
            negative_prompt_embeds=neg,
            num_inference_steps=steps,
            guidance_scale=7.0,
            width=64,
            height=64,
            output_type="np",
            generator=torch.Generator().manual_seed(8),
            **callback,
        ).images
    return to_uint8(images)[0]


def test_embeddings_swap_at_the_scheduled_step(engine, monkeypatch):
    pipe = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    cat, neg = _embeds(pipe, "a cat", "blur")
    # Far from "a cat", so that the swap shows even through a random-weight UNet.
    dog = torch.randn(cat.shape, generator=torch.Generator().manual_seed(0)) * cat.std() * 10
    plan = prompting.PromptPlan(
        [prompting.StepEmbeds(cat, neg)] + [prompting.StepEmbeds(dog, neg)] * 3
    )
    monkeypatch.setattr(prompting, "encode", lambda *a, **k: plan)
    got = engine.run(
        Job(prompt="[a cat:a dog:1]", steps=4, sampler="Euler", width=64, height=64, seed=8)
    )

    def swap(p, i, t, tensors):
        return {"prompt_embeds": torch.cat([neg, dog])} if i == 0 else {}

    ref = _reference(pipe, cat, neg, 4, swap)
    only_cat = _reference(pipe, cat, neg, 4)
    assert maxdiff(got.images[0].image, ref) <= 1
    assert maxdiff(got.images[0].image, only_cat) > 3  # the swap mattered


def test_prompt_editing_end_to_end_follows_a1111_steps(engine):
    """ "[a cat:an old dog:0.25]" over 8 steps switches at step int(0.25 * 8) = 2: A1111 uses
    the first text for steps 0, 1 and 2 (each step index <= 2), the second from step 3.
    The UNet's own inputs are recorded, so the test sees which text each step got."""
    from dreamwire.backend.text_encoding import PromptEncoder

    pipe = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    enc = PromptEncoder.for_pipeline(pipe)
    with torch.inference_mode():
        cat, dog, neg = (e.embeds for e in enc.encode(["a cat", "an old dog", "blur"]))

    seen: list[str] = []

    def spy(module, args, kwargs):
        hidden = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        cond = hidden[-1:]  # CFG batch: negative first, then the prompt
        seen.append(
            "cat" if torch.allclose(cond, cat) else "dog" if torch.allclose(cond, dog) else "?"
        )

    handle = (
        engine.load("tiny-sd1").components["unet"].register_forward_pre_hook(spy, with_kwargs=True)
    )
    try:
        got = (
            engine.run(
                Job(
                    prompt="[a cat:an old dog:0.25]",
                    negative="blur",
                    steps=8,
                    sampler="Euler",
                    width=64,
                    height=64,
                    seed=8,
                )
            )
            .images[0]
            .image
        )
    finally:
        handle.remove()
    assert seen == ["cat"] * 3 + ["dog"] * 5

    def swap(p, i, t, tensors):
        return {"prompt_embeds": torch.cat([neg, dog])} if i == 2 else {}

    assert maxdiff(got, _reference(pipe, cat, neg, 8, swap)) <= 1


def _seen_texts(engine, job: Job, texts: dict[str, str]) -> list[str]:
    """Which of `texts` (label -> prompt) the UNet's positive half got at each call."""
    from dreamwire.backend.text_encoding import PromptEncoder

    pipe = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    enc = PromptEncoder.for_pipeline(pipe)
    with torch.inference_mode():
        embeds = dict(zip(texts, (e.embeds for e in enc.encode(list(texts.values()))), strict=True))
    seen: list[str] = []

    def spy(module, args, kwargs):
        hidden = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        cond = hidden[-1:]
        seen.append(next((k for k, e in embeds.items() if torch.allclose(cond, e)), "?"))

    unet = engine.load("tiny-sd1").components["unet"]
    handle = unet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        engine.run(job)
    finally:
        handle.remove()
    return seen


def test_hires_pass_schedules_with_a1111_hires_rule(engine):
    """A1111 (prompt_parser, hires_steps) lays the hires pass's schedule over that pass's
    own steps: a fraction above 1 is a point in the hires pass, a whole number counts on
    from the first pass's steps, and a fraction below 1 is over by the hires pass. First
    pass 4 steps; the hires pass runs all its 8 steps, as A1111's Hires.fix does (over a
    16-step schedule, 8 / 0.5)."""
    from dreamwire.shared.job import HiresFix

    texts = {"cat": "a cat", "dog": "an old dog"}

    def seen(prompt: str) -> list[str]:
        job = Job(
            prompt=prompt,
            steps=4,
            sampler="Euler",
            width=64,
            height=64,
            seed=8,
            hires=HiresFix(scale=2.0, denoise=0.5, steps=8, upscaler="Latent"),
        )
        return _seen_texts(engine, job, texts)

    # 1.5: first pass int(1.5 * 4) -> clamped to 4, all "cat"; hires int(0.5 * 8) = 4.
    assert seen("[a cat:an old dog:1.5]") == ["cat"] * 4 + ["cat"] * 5 + ["dog"] * 3
    # 6: first pass min(4, 6) = 4, all "cat"; hires 6 - 4 = 2.
    assert seen("[a cat:an old dog:6]") == ["cat"] * 4 + ["cat"] * 3 + ["dog"] * 5
    # 0.5: halfway through the first pass; in the hires pass it switched before it began.
    assert seen("[a cat:an old dog:0.5]") == ["cat"] * 3 + ["dog"] + ["dog"] * 8


def test_hires_prompt_drives_the_second_pass_and_its_infotext(engine):
    from dreamwire.shared.infotext import parse_infotext
    from dreamwire.shared.job import HiresFix

    texts = {"cat": "a cat", "dog": "an old dog"}
    hires = HiresFix(scale=2.0, denoise=0.5, steps=4, upscaler="Latent", prompt="an old dog")
    base = dict(prompt="a cat", negative="blur", steps=3, sampler="Euler", width=64, height=64)
    job = Job(**base, seed=8, hires=hires)
    assert Job.from_wire(*job.to_wire()).hires == hires  # the fields travel
    # The hires pass runs its 4 steps (A1111's Hires.fix), all with the hires prompt.
    assert _seen_texts(engine, job, texts) == ["cat"] * 3 + ["dog"] * 4

    text = engine.run(Job(**base, seed=8, hires=hires)).images[0].infotext
    info = parse_infotext(text)
    assert info.extras["Hires prompt"] == "an old dog"
    assert "Hires negative prompt" not in info.order  # the same as the first pass's
    # A1111's place: among txt2img's Hires fields, before Hires upscale.
    assert info.order.index("Hires prompt") + 1 == info.order.index("Hires upscale")

    same = HiresFix(scale=2.0, denoise=0.5, steps=4, prompt="a cat", negative="lowres, blur")
    info = parse_infotext(engine.run(Job(**base, seed=8, hires=same)).images[0].infotext)
    assert "Hires prompt" not in info.order
    assert info.extras["Hires negative prompt"] == "lowres, blur"
