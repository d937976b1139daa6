"""T2I-Adapter units: the engine's result equals diffusers' StableDiffusion(XL)AdapterPipeline,
single files in TencentARC's original layout load to the folder's weights, and A1111's
weight, window and control-mode rules hold, alongside ControlNet units too."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from cn_helpers import BASE, SIZE, maxdiff, noise_image, run_job_settings
from PIL import Image

from dreamwire.backend.conditioning import controlnet_files, preprocess
from dreamwire.backend.conditioning.adapter_stack import SOFT_SCALES, AdapterStack
from dreamwire.backend.conditioning.controlnet import StackUnit
from dreamwire.backend.conditioning.t2i_adapter import AdapterInfo
from dreamwire.backend.samplers import make_scheduler
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job

DEPTH = "t2iadapter_depth_sd15v2"  # SD1 diffusers folder
DEPTH_FILE = "t2iadapter_depth_sd14v1"  # the same weights, TencentARC's original layout
SKETCH_XL = "t2i-adapter-sketch-sdxl-1.0"  # SDXL, one input channel
CANNY_CN = "control_v11p_sd15_canny"


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **kw})


def load(engine, path, model="tiny-sd1"):
    comps = engine.load(model).components
    info = controlnet_files.inspect(path)
    return controlnet_files.load(info, dict(comps["unet"].config), torch.float32, "cpu")


def adapter_pipe(engine, adapter, model="tiny-sd1"):
    """diffusers' own adapter pipeline around the engine's loaded components."""
    comps = engine.load(model).components
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet")}
    parts["scheduler"] = make_scheduler("Euler", comps["scheduler"].config)
    if model == "tiny-sdxl":
        parts.update(text_encoder_2=comps["text_encoder_2"], tokenizer_2=comps["tokenizer_2"])
        pipe = diffusers.StableDiffusionXLAdapterPipeline(**parts, adapter=adapter)
    else:
        pipe = diffusers.StableDiffusionAdapterPipeline(
            **parts,
            adapter=adapter,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def base_image(engine):
    return engine.run(job()).images[0].image


@pytest.fixture(scope="module")
def depth_adapter(engine, cn_dir):
    return load(engine, cn_dir / DEPTH)


def test_adapter_equals_diffusers_sd1(engine, depth_adapter, base_image):
    ctl = noise_image(21)
    unit = ControlUnit(type="depth", image=ctl, weight=0.8, model=DEPTH)
    out = engine.run(job(controls=[unit])).images[0].image
    ref = run_job_settings(
        adapter_pipe(engine, depth_adapter),
        image=Image.fromarray(ctl),
        adapter_conditioning_scale=0.8,
        **SIZE,
    )
    assert maxdiff(out, ref) <= 1
    assert maxdiff(out, base_image) > 10  # the adapter really steers the image
    unet = engine.load("tiny-sd1").components["unet"]
    assert not unet._forward_pre_hooks  # the cached UNet is left as it was


def test_adapter_equals_diffusers_sdxl_one_channel(engine, cn_dir):
    # The sketch adapter reads one channel: the unit image's first, as A1111 feeds it.
    ctl = noise_image(22)
    unit = ControlUnit(type="scribble", image=ctl, weight=1.2, model=SKETCH_XL)
    xl = dict(model="tiny-sdxl", cfg=5.0)
    out = engine.run(job(controls=[unit], **xl)).images[0].image
    base = engine.run(job(**xl)).images[0].image
    pipe = adapter_pipe(engine, load(engine, cn_dir / SKETCH_XL, "tiny-sdxl"), "tiny-sdxl")
    ref = run_job_settings(
        pipe,
        image=Image.fromarray(ctl[:, :, 0]),
        adapter_conditioning_scale=1.2,
        guidance_scale=5.0,
        **SIZE,
    )
    assert maxdiff(out, ref) <= 1
    assert maxdiff(out, base) > 10


@pytest.mark.parametrize(
    ("folder", "single", "model"),
    [
        (DEPTH, f"{DEPTH_FILE}.safetensors", "tiny-sd1"),
        (SKETCH_XL, "t2iadapter_xl_sketch_original.safetensors", "tiny-sdxl"),
        (SKETCH_XL, "t2i-adapter_diffusers_xl_sketch.safetensors", "tiny-sdxl"),
    ],
)
def test_single_file_loads_the_folder_weights(engine, cn_dir, folder, single, model):
    a, b = load(engine, cn_dir / folder, model), load(engine, cn_dir / single, model)
    public = [{k: v for k, v in m.config.items() if not k.startswith("_")} for m in (a, b)]
    assert public[0] == public[1]
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_light_adapter_original_layout_and_color_grid(engine, cn_dir, base_image):
    info = controlnet_files.inspect(cn_dir / "t2iadapter_color_sd14v1.safetensors")
    assert info.type == "color" and info.adapter.config.adapter_type == "light_adapter"
    picture = noise_image(23)
    grid = preprocess.run("t2ia_color_grid", picture)
    # A1111's color annotator: shortest side to 512, then 64 px cells of one colour.
    assert grid.shape == (512, 512, 3)
    assert len(np.unique(grid.reshape(-1, 3), axis=0)) <= 64
    assert (grid[:64, :64] == grid[0, 0]).all()
    unit = ControlUnit(type="color", image=picture, preprocessor="t2ia_color_grid")
    out = engine.run(job(controls=[unit])).images[0].image  # picked by type: the color adapter
    assert maxdiff(out, base_image) > 5


def test_weight_zero_equals_no_adapter(engine, seen, base_image):
    unit = ControlUnit(type="depth", image=noise_image(24), weight=0.0, model=DEPTH)
    out = engine.run(job(controls=[unit])).images[0].image
    assert np.array_equal(out, base_image)
    assert seen.calls["t2i_adapter"] == [[False]] * 4


def test_window_follows_a1111(engine, seen, base_image):
    ctl = noise_image(25)
    full = engine.run(job(controls=[ControlUnit(type="depth", image=ctl, model=DEPTH)]))
    assert seen.calls["t2i_adapter"] == [[True]] * 4
    unit = ControlUnit(type="depth", image=ctl, model=DEPTH, start=0.5)
    late = engine.run(job(controls=[unit])).images[0].image
    # A1111 keeps a unit at step i of n when start <= i/n <= end: steps 2 and 3 here.
    assert seen.calls["t2i_adapter"] == [[False], [False], [True], [True]]
    assert maxdiff(late, base_image) > 0 and maxdiff(late, full.images[0].image) > 0


def test_window_end_equals_diffusers_sdxl(engine, seen, cn_dir):
    # end=0.5 of 4 steps: A1111 runs steps 0, 1 and 2 (2/4 is not past 0.5), which is
    # diffusers' adapter_conditioning_factor=0.75 (steps i < int(4 * 0.75)); only the SDXL
    # adapter pipeline has that argument.
    ctl = noise_image(30)
    unit = ControlUnit(type="scribble", image=ctl, model=SKETCH_XL, end=0.5)
    out = engine.run(job(model="tiny-sdxl", controls=[unit])).images[0].image
    assert seen.calls["t2i_adapter"] == [[True], [True], [True], [False]]
    pipe = adapter_pipe(engine, load(engine, cn_dir / SKETCH_XL, "tiny-sdxl"), "tiny-sdxl")
    ref = run_job_settings(
        pipe, image=Image.fromarray(ctl[:, :, 0]), adapter_conditioning_factor=0.75, **SIZE
    )
    assert maxdiff(out, ref) <= 1
    full = run_job_settings(pipe, image=Image.fromarray(ctl[:, :, 0]), **SIZE)
    assert maxdiff(out, full) > 0


def test_control_modes_scale_and_mask_the_features(depth_adapter):
    image = torch.rand(1, 3, 64, 64)
    feats = depth_adapter(image)
    like = torch.zeros(2, 4, 8, 8)

    def residuals(mode):
        stack = AdapterStack([depth_adapter], [StackUnit(weight=0.7, mode=mode)], [image], True)
        return stack.residuals(2, like)

    balanced, prompt, cn = residuals("balanced"), residuals("prompt"), residuals("controlnet")
    for k, f in enumerate(feats):
        assert torch.allclose(balanced[k], (f * 0.7).expand(2, -1, -1, -1))
        # Soft injection: the extension's (0.25, 0.62, 0.825, 1.0) per feature, both halves.
        assert torch.allclose(prompt[k], (f * (0.7 * SOFT_SCALES[k])).expand(2, -1, -1, -1))
        # "ControlNet is more important": soft, and nothing on the unconditional half.
        assert torch.equal(cn[k][0], torch.zeros_like(cn[k][0]))
        assert torch.allclose(cn[k][1], prompt[k][1])


def test_adapter_and_controlnet_in_one_pass(engine, seen, base_image):
    canny, depth = noise_image(26), noise_image(27)
    cn_unit = ControlUnit(type="canny", image=canny, weight=0.9, model=CANNY_CN)
    ad_unit = ControlUnit(type="depth", image=depth, weight=0.9, model=DEPTH, end=0.5)
    both = engine.run(job(controls=[cn_unit, ad_unit])).images[0].image
    assert seen.calls["controlnet"] == [[True]] * 4
    assert seen.calls["t2i_adapter"] == [[True], [True], [True], [False]]
    cn_only = engine.run(job(controls=[cn_unit])).images[0].image
    assert maxdiff(both, cn_only) > 0 and maxdiff(both, base_image) > 10
    assert not engine.load("tiny-sd1").components["unet"]._forward_pre_hooks


@pytest.mark.parametrize(("model", "adapter"), [("tiny-sd1", SKETCH_XL), ("tiny-sdxl", DEPTH_FILE)])
def test_architecture_mismatch_refused(engine, model, adapter):
    unit = ControlUnit(type="depth", image=noise_image(28), model=adapter)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(model=model, controls=[unit]))
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "T2I-Adapter" in err.value.message


def test_style_adapter_refused(engine):
    unit = ControlUnit(type="shuffle", image=noise_image(29), model="t2iadapter_style_sd14v1")
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[unit]))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "style" in err.value.message and "CLIP-vision" in err.value.message
    with pytest.raises(DreamwireError) as err:
        preprocess.run("t2ia_style_clipvision", noise_image(29))
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE


def test_hires_pass_runs_the_adapter_at_its_size(engine, seen):
    # The second pass reads the control image at its own size; canny units get soft
    # injection there, as the extension forces for canny and mlsd in Hires.fix.
    unit = ControlUnit(type="canny", image=noise_image(31), model="t2iadapter_canny_sd14v1")
    out = engine.run(job(controls=[unit], hires=HiresFix(scale=2.0, denoise=0.5)))
    assert out.images[0].image.shape == (128, 128, 3)
    stack = seen.stacks["t2i_adapter"]
    assert stack.images[0].shape[-2:] == (128, 128) and stack.units[0].soft
    # A1111's Hires.fix runs all its 4 steps (diffusers' own img2img: int(4 * 0.5)).
    assert seen.calls["t2i_adapter"] == [[True]] * 4


def test_pickled_adapter_refused(tmp_path, cn_dir):
    from safetensors.torch import load_file

    state = load_file(str(cn_dir / f"{DEPTH_FILE}.safetensors"))
    path = tmp_path / "t2iadapter_depth_sd14v1.pth"
    torch.save(state, path)
    info = controlnet_files.inspect(path)
    assert isinstance(info, AdapterInfo) and info.pickled
    with pytest.raises(DreamwireError) as err:
        controlnet_files.check_supported(info)
    assert err.value.code == ErrorCode.MODEL_UNSAFE


def test_size_the_adapter_cannot_unshuffle_is_refused(engine):
    # SDXL adapters unshuffle by 16: 72 px (a multiple of 8) does not divide.
    unit = ControlUnit(type="scribble", image=noise_image(32, h=72, w=72), model=SKETCH_XL)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(model="tiny-sdxl", width=72, height=72, controls=[unit]))
    assert err.value.code == ErrorCode.INVALID_SIZE and "16" in err.value.message
