"""Composable diffusion: A1111's ``AND`` prompts, split, encoded and guided as A1111 does
(prompt_parser.get_multicond_prompt_list, sd_samplers_cfg_denoiser.combine_denoised)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.backend.prompts import split_subprompts
from dreamwire.backend.text_encoding import PromptEncoder, encode_conditioning
from dreamwire.shared.job import ControlUnit, HiresFix, Job
from tests.support.engines import cpu_engine

# -- splitting -----------------------------------------------------------------------------

# (prompt, [(text, weight), ...]) as A1111's re_AND / re_weight give them.
SPLITS = [
    ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
    ("a cat :1.2 AND a dog:0.5", [("a cat", 1.2), (" a dog", 0.5)]),
    ("a cat AND a dog :-0.5", [("a cat", 1.0), (" a dog", -0.5)]),
    ("a cat:+2 AND b: .5", [("a cat", 2.0), (" b", 0.5)]),
    ("a cat :1. AND b :3", [("a cat", 1.0), (" b", 3.0)]),
    # no AND: the one prompt still loses a trailing weight and trailing whitespace
    ("a cat", [("a cat", 1.0)]),
    ("a cat:0.3", [("a cat", 0.3)]),
    ("  a cat  \n", [("  a cat", 1.0)]),
    # lower case, inside words, glued to word characters: no split
    ("a cat and a dog", [("a cat and a dog", 1.0)]),
    ("ANDROID, BRANDS, SANDY", [("ANDROID, BRANDS, SANDY", 1.0)]),
    ("x_AND_y ANDAND", [("x_AND_y ANDAND", 1.0)]),
    # punctuation is a word boundary
    ("cat,AND,dog", [("cat,", 1.0), (",dog", 1.0)]),
    # trailing whitespace goes, leading whitespace stays; empty subprompts stay, as empty
    # prompts
    ("x AND", [("x", 1.0), ("", 1.0)]),
    ("AND x", [("", 1.0), (" x", 1.0)]),
    ("AND", [("", 1.0), ("", 1.0)]),
    ("a AND  AND b", [("a", 1.0), ("", 1.0), (" b", 1.0)]),
    ("x AND :0.5", [("x", 1.0), ("", 0.5)]),
    # not a weight: more text after the number, a colon without number, two dots
    ("a :1 x", [("a :1 x", 1.0)]),
    ("a cat:", [("a cat:", 1.0)]),
    ("q :1.2.3", [("q :1.2.3", 1.0)]),
    # attention weights and editing are the subprompt's own business
    ("(a cat:1.2) AND [dog:bird:5]", [("(a cat:1.2)", 1.0), (" [dog:bird:5]", 1.0)]),
    ("a [dog:bird:0.5]:0.7", [("a [dog:bird:0.5]", 0.7)]),
    # the split comes first: AND inside brackets breaks them, as in A1111
    ("[cat AND dog:bird:5]", [("[cat", 1.0), (" dog:bird:5]", 1.0)]),
    ("line one\nAND line :2\ntwo :0.5", [("line one", 1.0), (" line :2\ntwo", 0.5)]),
]


@pytest.mark.parametrize(("prompt", "expected"), SPLITS)
def test_split_matches_a1111(prompt, expected):
    assert [(p.text, p.weight) for p in split_subprompts(prompt)] == expected


# -- encoding ------------------------------------------------------------------------------


def test_subprompts_encode_on_their_own(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    with torch.inference_mode():
        sched = encode_conditioning(enc, "a cat AND a (dog) :0.5", "blur", steps=4)
        # Each subprompt is encoded alone (emphasis restores the mean over what is encoded
        # together).
        cat, dog, blur = (enc.encode([t])[0].embeds for t in ["a cat", " a (dog)", "blur"])
        plain = encode_conditioning(enc, "a cat  ", "blur", steps=4)
    step = sched.at_step(0)
    assert step.weights == (1.0, 0.5)
    assert torch.equal(step.conds[0], cat) and torch.equal(step.conds[1], dog)
    assert torch.equal(step.cond, cat) and torch.equal(step.uncond, blur)
    assert not sched.changes
    # A plain prompt stays plain.
    assert not plain.composable and plain.at_step(0).weights == ()
    assert torch.equal(plain.at_step(0).cond, cat)


def test_each_subprompt_has_its_own_schedule(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    with torch.inference_mode():
        sched = encode_conditioning(enc, "[a cat:a dog:2] AND a bird :0.7", "", steps=4)
        # A subprompt's schedule is encoded in one batch (A1111 does the same).
        cat, dog = (e.embeds for e in enc.encode(["a cat", "a dog"]))
        bird = enc.encode([" a bird"])[0].embeds
    steps = sched.per_step(4)
    assert sched.changes
    assert [torch.equal(s.conds[0], cat) for s in steps] == [True, True, True, False]
    assert torch.equal(steps[3].conds[0], dog)
    assert all(torch.equal(s.conds[1], bird) and s.weights == (1.0, 0.7) for s in steps)
    assert steps[0] is steps[2]  # unchanged steps share one entry


def test_longer_subprompt_pads_shorter_ones_with_their_last_vector(sd1_pipe):
    """A1111's stack_conds: subprompts of different lengths are brought to the longest by
    repeating the last vector; the negative is padded with the empty prompt."""
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    long = ", ".join(["a red brick wall with moss"] * 15)  # more than 75 tokens
    with torch.inference_mode():
        sched = encode_conditioning(enc, f"a cat AND {long}", "blur", steps=2)
        cat, lng, blur = (enc.encode([t])[0] for t in ["a cat", f" {long}", "blur"])
        empty = enc.empty().embeds
    assert lng.chunks == 2
    step = sched.at_step(0)
    assert step.conds[0].shape == step.conds[1].shape == step.uncond.shape == (1, 154, 32)
    assert torch.equal(step.conds[0][:, :77], cat.embeds)
    assert torch.equal(step.conds[0][:, 77:], cat.embeds[:, -1:].repeat(1, 77, 1))
    assert torch.equal(step.conds[1], lng.embeds)
    assert torch.equal(step.uncond, torch.cat([blur.embeds, empty], dim=1))

    # A long negative: subprompts are padded among themselves, then with the empty prompt.
    with torch.inference_mode():
        sched = encode_conditioning(enc, "a cat AND a dog", long, steps=2)
    step = sched.at_step(0)
    assert step.conds[0].shape == (1, 154, 32)
    assert torch.equal(step.conds[0][:, 77:], empty)


def test_sdxl_subprompts_bring_their_own_pooled_vectors(sdxl_pipe):
    enc = PromptEncoder.for_pipeline(sdxl_pipe)
    with torch.inference_mode():
        step = encode_conditioning(enc, "a cat AND a dog :0.4", "", steps=2).at_step(0)
        cat, dog = (enc.encode([t])[0] for t in ["a cat", " a dog"])
    assert torch.equal(step.pooleds[0], cat.pooled) and torch.equal(step.pooleds[1], dog.pooled)
    assert not torch.equal(cat.pooled, dog.pooled)
    assert torch.equal(step.uncond, torch.zeros_like(step.uncond))  # empty SDXL negative
    assert torch.equal(step.uncond_pooled, torch.zeros_like(cat.pooled))


# -- the engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_models):
    return cpu_engine(tiny_models, cache_size=None)


BASE = dict(negative="blurry", steps=3, sampler="Euler", width=64, height=64, seed=11)


def _images(engine, prompt: str, **kw) -> list[np.ndarray]:
    result = engine.run(Job(**{**BASE, "prompt": prompt, **kw}))
    return [img.image.astype(np.int16) for img in result.images]


def _maxdiff(a, b) -> int:
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


def _a1111_reference(engine, texts_weights, negative: str, cfg: float, seed: int, steps: int):
    """The denoising loop written out by hand with the engine's own UNet, VAE and text
    encoding: A1111's combine_denoised on every step."""
    from dreamwire.backend.samplers import make_scheduler

    comps = engine.load("tiny-sd1").components
    unet, vae = comps["unet"], comps["vae"]
    enc = PromptEncoder.from_components(comps["tokenizer"], comps["text_encoder"])
    sched = make_scheduler("Euler", comps["scheduler"].config)
    with torch.inference_mode():
        uncond = enc.encode([negative])[0].embeds
        conds = [e.embeds for e in enc.encode([t for t, _ in texts_weights])]
        sched.set_timesteps(steps)
        gen = torch.Generator("cpu").manual_seed(seed)
        latents = torch.randn((1, 4, 8, 8), generator=gen) * sched.init_noise_sigma
        for t in sched.timesteps:
            x = sched.scale_model_input(latents, t)
            out = unet(
                torch.cat([x] * (1 + len(conds))),
                t,
                encoder_hidden_states=torch.cat([uncond, *conds]),
            ).sample
            u = out[:1]
            denoised = u.clone()
            for i, (_, w) in enumerate(texts_weights):
                denoised += (out[1 + i : 2 + i] - u) * (w * cfg)
            latents = sched.step(denoised, t, latents).prev_sample
        image = vae.decode(latents / vae.config.scaling_factor).sample
    image = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return (image * 255).round().astype(np.int16)


@pytest.mark.parametrize("cfg", [7.0, 1.0])
def test_and_job_equals_a1111_formula(engine, cfg):
    """uncond + sum_i (cond_i - uncond) * w_i * cfg, on every step; with cfg 1 too (diffusers
    would skip the negative prompt there; A1111 never does)."""
    got = _images(engine, "a red fox AND a blue sky :0.5", cfg=cfg)[0]
    ref = _a1111_reference(engine, [("a red fox", 1.0), (" a blue sky", 0.5)], "blurry", cfg, 11, 3)
    assert _maxdiff(got, ref) <= 1
    fox = _images(engine, "a red fox", cfg=cfg)[0]
    assert _maxdiff(got, fox) > 3  # the second subprompt mattered


def test_half_and_half_of_one_prompt_is_that_prompt(engine):
    """'a :0.5 AND a :0.5' guides exactly like 'a': batch of two, and with a ControlNet in
    "ControlNet is more important" mode (its residuals on the conditional rows only)."""
    fox = "a red fox in snow"
    pair = f"{fox} :0.5 AND {fox}:0.5"
    assert _maxdiff(_images(engine, pair, batch=2), _images(engine, fox, batch=2)) <= 1
    blocks = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    control = np.ascontiguousarray(blocks.repeat(8, axis=0).repeat(8, axis=1))
    unit = ControlUnit(type="canny", image=control, control_mode="controlnet")
    with_cn = _images(engine, fox, controls=[unit])[0]
    assert _maxdiff(_images(engine, pair, controls=[unit])[0], with_cn) <= 1
    assert _maxdiff(with_cn, _images(engine, fox)[0]) > 3  # the ControlNet steered


def test_single_weight_scales_the_guidance(engine):
    """A1111 reads a trailing weight without AND too: 'a :0.5' at CFG 8 is 'a' at CFG 4."""
    assert (
        _maxdiff(_images(engine, "a red fox :0.5", cfg=8.0), _images(engine, "a red fox", cfg=4.0))
        <= 1
    )


def test_sdxl_and_runs_every_subprompt_with_its_pooled_vector(engine):
    comps = engine.load("tiny-sdxl").components
    seen = []

    def spy(module, args):
        seen.append(args[0].clone())  # [pooled text, time embeddings] of each row

    # Inside the UNet, so that it sees the batch the engine's hooks made.
    handle = comps["unet"].add_embedding.register_forward_pre_hook(spy)
    try:
        pair = _images(engine, "a cat :0.5 AND a cat:0.5", model="tiny-sdxl", steps=2)
        both = _images(engine, "a cat AND a dog :0.2", model="tiny-sdxl", steps=2)
    finally:
        handle.remove()
    assert _maxdiff(pair, _images(engine, "a cat", model="tiny-sdxl", steps=2)) <= 1
    enc = PromptEncoder.from_components(
        comps["tokenizer"], comps["text_encoder"], comps["tokenizer_2"], comps["text_encoder_2"]
    )
    with torch.inference_mode():
        cat, dog, neg = (enc.encode([t])[0].pooled for t in ["a cat", " a dog", "blurry"])
    rows = seen[-1]
    assert rows.shape[0] == 3  # negative, "a cat", "a dog"
    for got, want in zip(rows[:, : cat.shape[1]], [neg, cat, dog], strict=True):
        assert torch.allclose(got, want[0], atol=1e-6)
    assert _maxdiff(both, pair) > 3


def test_hires_pass_is_composable_and_the_model_is_left_alone(engine):
    unet = engine.load("tiny-sd1").components["unet"]
    rows = []
    handle = unet.conv_in.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    hires = HiresFix(scale=2.0, denoise=0.5, steps=2, upscaler="Latent")
    try:
        _images(engine, "a cat AND a dog AND a bird", steps=2, hires=hires)
        _images(
            engine,
            "a cat",
            steps=2,
            hires=HiresFix(scale=2.0, denoise=0.5, steps=2, upscaler="Latent", prompt="x AND y"),
        )
    finally:
        handle.remove()
    # 2 first-pass steps, 2 hires steps (A1111 runs all of a Hires.fix pass's steps):
    # negative + three subprompts; then 2 + 2 with the plain first pass and the "x AND y"
    # hires prompt.
    assert rows == [4, 4, 4, 4, 2, 2, 3, 3]
    assert not unet._forward_hooks and not unet._forward_pre_hooks


def test_infotext_keeps_the_prompt_verbatim(engine):
    from dreamwire.shared.infotext import parse_infotext

    prompt = "a cat :1.2 AND (a dog:0.8) AND [bird:fish:2]:0.5"
    info = parse_infotext(engine.run(Job(**{**BASE, "prompt": prompt})).images[0].infotext)
    assert info.prompt == prompt


def test_subprompt_schedules_switch_inside_the_loop(engine):
    """'[a cat:a dog:1] AND a bird' over 3 steps: the first subprompt is "a cat" for steps
    0 and 1 and "a dog" at step 2, while "a bird" stays; the UNet's cross-attention sees
    [negative, first subprompt, second subprompt] on every step."""
    comps = engine.load("tiny-sd1").components
    enc = PromptEncoder.from_components(comps["tokenizer"], comps["text_encoder"])
    with torch.inference_mode():
        cat, dog = (e.embeds for e in enc.encode(["a cat", "a dog"]))
        bird, neg = (enc.encode([t])[0].embeds for t in [" a bird", "blurry"])
    labels = {"cat": cat, "dog": dog, "bird": bird, "neg": neg}
    attn = next(m for m in comps["unet"].modules() if getattr(m, "is_cross_attention", False))
    seen = []

    def spy(module, args, kwargs):
        rows = kwargs["encoder_hidden_states"]
        seen.append(
            [next((k for k, e in labels.items() if torch.allclose(r, e[0])), "?") for r in rows]
        )

    handle = attn.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        _images(engine, "[a cat:a dog:1] AND a bird :0.5", steps=3)
    finally:
        handle.remove()
    assert seen == [["neg", "cat", "bird"]] * 2 + [["neg", "dog", "bird"]]
