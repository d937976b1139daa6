"""AnimateDiff on the tiny SDXL: the engine, given an SDXL motion module in AnimateDiff's
original layout (a weights-only .ckpt in A1111's folder), a weighted prompt and a LoRA tag,
equals diffusers' AnimateDiffSDXLPipeline given the same weights as a MotionAdapter folder,
the engine's prompt_embeds and the LoRA-patched model, bit for bit (with the UNet's
add_embedding copied in, which diffusers' from_unet2d leaves random); context windows run
FreeNoise as on SD1.5; an SD1.5-shaped module and per-frame ControlNets are refused at plan
time by name."""

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

FRAMES, SIZE = 4, 32
PROMPT = "a (fox:1.3) running <lora:tiny_xl_style:0.7>"


@pytest.fixture(scope="module")
def xl_engine(tiny_models):
    return cpu_engine(tiny_models, cache_size=None)


def xl_job(module="tiny_mm_sdxl", **kw) -> Job:
    settings = AnimateDiff(module, FRAMES)  # 16-frame windows: one window
    base = dict(prompt=PROMPT, negative="blurry", model="tiny-sdxl", sampler="Euler")
    base.update(steps=2, cfg=5.0, seed=5, width=SIZE, height=SIZE)
    return Job(mode=JobMode.ANIMATEDIFF, animatediff=settings, **{**base, **kw})


def reference(engine, motion_root, job: Job, pipe_cls) -> list[np.ndarray]:
    import diffusers

    folder = motion_root / "models" / "animatediff_models" / "tiny-motion-adapter-xl"
    patch = fused_lora(engine, "tiny-sdxl", "tiny_xl_style", 0.7)
    try:
        comps = reference_pipe(engine, "StableDiffusionXLPipeline", job.sampler, "tiny-sdxl")
        parts = dict(comps.components)
        pipe = pipe_cls(**parts, motion_adapter=diffusers.MotionAdapter.from_pretrained(folder))
        # diffusers leaves SDXL's add_embedding random in the motion UNet (animatediff.py).
        pipe.unet.add_embedding.load_state_dict(parts["unet"].add_embedding.state_dict())
        pipe.set_progress_bar_config(disable=True)
        a = job.animatediff
        if a.frames > a.context_length:
            pipe.enable_free_noise(context_length=a.context_length, context_stride=a.context_stride)
        args = dict(num_frames=a.frames, width=SIZE, height=SIZE, num_inference_steps=job.steps)
        args.update(guidance_scale=job.cfg, output_type="np")
        args.update(a1111_embeds(pipe, job.prompt, job.negative, job.steps, sdxl=True))
        with torch.inference_mode():
            out = pipe(generator=torch.Generator("cpu").manual_seed(job.seed), **args).frames[0]
    finally:
        patch.restore()
    return to_uint8(out)


@pytest.fixture(scope="module")
def one_window(xl_engine):
    job = xl_job()
    return job, xl_engine.run(job)


def test_sdxl_engine_equals_animatediff_sdxl_pipeline(xl_engine, tiny_models, one_window):
    import diffusers

    job, result = one_window
    frames = [g.image for g in result.images]
    assert len(frames) == FRAMES and frames[0].shape == (SIZE, SIZE, 3)
    ref = reference(xl_engine, tiny_models, job, diffusers.AnimateDiffSDXLPipeline)
    for ours, theirs in zip(frames, ref, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    info = result.images[0].infotext
    assert "AnimateDiff: tiny_mm_sdxl" in info and "Lora hashes" in info


def test_sdxl_context_windows_run_free_noise(xl_engine, tiny_models, one_window):
    from dreamwire.backend.engine import animatediff

    job = xl_job()
    job.animatediff.context_length, job.animatediff.context_stride = 2, 1
    ours = [g.image for g in xl_engine.run(job).images]
    ref = reference(xl_engine, tiny_models, job, animatediff.sdxl_pipeline_class())
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    # The windows change the frames: the motion module saw two frames at a time.
    assert not np.array_equal(ours[-1], one_window[1].images[-1].image)


def test_sd15_module_and_frame_controlnets_are_refused_on_sdxl_at_plan_time(
    xl_engine, tmp_path, monkeypatch
):
    from dreamwire.backend.engine import planning
    from dreamwire.backend.tiny import motion_modules as tiny_mm
    from dreamwire.backend.tiny.files import save_tensors, state_of

    # An SD1.5-shaped module (four down blocks, as mm_sd_v15_v2), small.
    sd15 = tiny_mm.to_original(state_of(tiny_mm.adapter((32, 32, 32, 32))))
    monkeypatch.setenv("DREAMWIRE_MOTION_MODULES", str(tmp_path))
    save_tensors(sd15, tmp_path / "mm_sd15_shaped.safetensors")
    with pytest.raises(DreamwireError) as err:
        planning.plan(xl_job("mm_sd15_shaped"), xl_engine.library)
    assert err.value.code is ErrorCode.MODEL_MISMATCH
    assert "SD1.5" in str(err.value) and "mm_sdxl" in str(err.value)
    depth = [np.zeros((SIZE, SIZE, 3), np.uint8)] * FRAMES
    job = xl_job()
    job.animatediff.controls = [FrameControl("", depth, 1.0, "depth")]
    with pytest.raises(DreamwireError) as err:
        planning.plan(job, xl_engine.library)
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and "SDXL ControlNet" in str(err.value)
