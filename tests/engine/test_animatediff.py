"""AnimateDiff jobs on the tiny SD1 model: the engine, given AnimateDiff's original-layout
motion module (a weights-only .ckpt, renamed on load), equals diffusers' AnimateDiffPipeline
given the same weights as a MotionAdapter folder, bit for bit, with FreeNoise context windows
and with a ControlNet per frame; a module for other block widths, or a missing one, is
refused by name before anything loads. Prompts are the A1111 language as in still images:
a weighted prompt with a <lora:...> tag equals diffusers given the engine's prompt_embeds
on the LoRA-patched model, and what one batch cannot follow is refused at plan time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import a1111_embeds, fused_lora, reference_pipe, to_uint8

from dreamwire.shared.animatediff import AnimateDiff, FrameControl
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from tests.support.engines import cpu_engine

FRAMES, SIZE = 5, 32
CONTROLNET = "control_v11f1p_sd15_depth"


@pytest.fixture(scope="module")
def motion_root(tiny_models):
    return tiny_models  # build_all writes the tiny motion modules too


@pytest.fixture(scope="module")
def ad_engine(tiny_models):
    return cpu_engine(tiny_models)


def ad_job(module="tiny_mm_sd1", controls=(), **kw) -> Job:
    settings = AnimateDiff(module, FRAMES, context_length=4, context_stride=2)
    settings.controls = list(controls)
    base = dict(prompt="a fox running", negative="blurry", model="tiny-sd1", sampler="Euler")
    base.update(steps=2, cfg=5.0, seed=11, width=SIZE, height=SIZE)
    return Job(mode=JobMode.ANIMATEDIFF, animatediff=settings, **{**base, **kw})


def reference_frames(engine, motion_root, job: Job, cls_name: str, controlnet=None):
    import diffusers

    from dreamwire.backend.engine import animatediff

    folder = motion_root / "models" / "animatediff_models" / "tiny-motion-adapter"
    adapter = diffusers.MotionAdapter.from_pretrained(folder)
    comps = reference_pipe(engine, "StableDiffusionPipeline", job.sampler).components
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    if controlnet is not None:
        parts["controlnet"] = controlnet
    pipe = getattr(diffusers, cls_name)(**parts, motion_adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_free_noise(context_length=4, context_stride=2)
    args = animatediff.call_args(job, job.seed)  # prompt, frames, size, steps ... as given
    with torch.inference_mode():
        return to_uint8(pipe(**args).frames[0])


@pytest.fixture(scope="module")
def plain(ad_engine):
    """The job without controls, and the engine's result."""
    job = ad_job()
    return job, ad_engine.run(job)


def test_engine_equals_animatediff_pipeline_with_context_windows(ad_engine, motion_root, plain):
    job, result = plain
    frames = [g.image for g in result.images]
    assert len(frames) == FRAMES and frames[0].shape == (SIZE, SIZE, 3)
    ref = reference_frames(ad_engine, motion_root, job, "AnimateDiffPipeline")
    for ours, theirs in zip(frames, ref, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The motion module takes part: the frames differ from one another and from a plain
    # txt2img of the same seed.
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    assert "AnimateDiff: tiny_mm_sd1" in result.images[0].infotext


def test_controlnet_per_frame_equals_animatediff_controlnet_pipeline(ad_engine, motion_root, plain):
    from dreamwire.backend.conditioning import controlnet_files

    rng = np.random.default_rng(3)
    depth = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(FRAMES)]
    # No model named: the depth ControlNet made for the checkpoint is found by type.
    job = ad_job(controls=[FrameControl("", depth, 0.8, "depth")])
    ours = [g.image for g in ad_engine.run(job).images]
    entry = ad_engine.library.find("controlnet", CONTROLNET)
    unet = dict(ad_engine.load("tiny-sd1").components["unet"].config)
    info = controlnet_files.inspect(entry.path, entry.name)
    net = controlnet_files.load(info, unet, torch.float32, "cpu")
    ref = reference_frames(ad_engine, motion_root, job, "AnimateDiffControlNetPipeline", net)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    # The control images steer the frames.
    assert not np.array_equal(plain[1].images[0].image, ours[0])


@pytest.mark.parametrize(
    ("module", "code", "words"),
    [
        ("tiny_mm_wide", ErrorCode.MODEL_MISMATCH, "[64, 128]"),
        ("mm_sd_v15_v2", ErrorCode.MODEL_NOT_FOUND, "sd-webui-animatediff"),
    ],
)
def test_wrong_or_missing_module_is_refused(ad_engine, module, code, words):
    with pytest.raises(DreamwireError) as err:
        ad_engine.run(ad_job(module))
    assert err.value.code is code and words in str(err.value)


WEIGHTED = "a (fox:1.4) running, [grass] <lora:tiny_style:0.8>"


def test_weighted_prompt_and_lora_tag_equal_pipeline_given_embeds_and_fused_lora(
    ad_engine, motion_root
):
    import diffusers

    job = ad_job(prompt=WEIGHTED)
    job.animatediff.context_length = FRAMES  # one window: diffusers takes prompt_embeds
    unet = ad_engine.load("tiny-sd1").components["unet"]
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    result = ad_engine.run(job)
    ours = [g.image for g in result.images]
    # The job's LoRA is taken off again, exactly.
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    assert 'Lora hashes: "tiny_style: ' in result.images[0].infotext
    folder = motion_root / "models" / "animatediff_models" / "tiny-motion-adapter"
    patch = fused_lora(ad_engine, "tiny-sd1", "tiny_style", 0.8)
    try:
        comps = reference_pipe(ad_engine, "StableDiffusionPipeline", job.sampler).components
        parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
        adapter = diffusers.MotionAdapter.from_pretrained(folder)
        pipe = diffusers.AnimateDiffPipeline(**parts, motion_adapter=adapter)
        pipe.set_progress_bar_config(disable=True)
        embeds = a1111_embeds(pipe, WEIGHTED, job.negative, job.steps, sdxl=False)
        # Read as plain text the weights and the tag would give other embeddings.
        with torch.inference_mode():
            plain, _ = pipe.encode_prompt(WEIGHTED, "cpu", 1, False)
        assert not torch.equal(plain, embeds["prompt_embeds"])
        args = dict(num_frames=FRAMES, width=SIZE, height=SIZE, num_inference_steps=2)
        args.update(guidance_scale=job.cfg, output_type="np", **embeds)
        with torch.inference_mode():
            ref = pipe(generator=torch.Generator("cpu").manual_seed(job.seed), **args).frames[0]
    finally:
        patch.restore()
    for a, b in zip(ours, to_uint8(ref), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("prompt", "negative", "words"),
    [
        ("a fox AND a hare", "", "AND"),
        ("a fox:0.5", "", "subprompt weight"),
        ("a [fox:hare:0.5]", "", "prompt editing"),
        ("a fox", "[blurry|dark]", "negative"),
    ],
)
def test_prompt_syntax_one_batch_cannot_follow_is_refused_at_plan_time(
    ad_engine, prompt, negative, words
):
    from dreamwire.backend.engine import planning

    with pytest.raises(DreamwireError) as err:
        planning.plan(ad_job(prompt=prompt, negative=negative), ad_engine.library)
    assert err.value.code is ErrorCode.INVALID_PROMPT and words in str(err.value)
