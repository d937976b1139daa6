"""ControlNet Union (xinsir's controlnet-union-sdxl-1.0 / ProMax): identified from the
folder and from the single file, loaded for real, control types mapped to xinsir's
control_mode indices, and the engine's union passes equal diffusers'
StableDiffusionXLControlNetUnionPipeline for the same components and seed."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from cn_helpers import BASE, SIZE, maxdiff, noise_image, run_job_settings
from PIL import Image

from dreamwire.backend.conditioning import controlnet_files, union
from dreamwire.backend.samplers import make_scheduler
from dreamwire.backend.tiny import union as tiny_union
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.engine.reference import a1111_steps

UNION = tiny_union.FOLDER  # diffusers folder, 6 control types
PROMAX = tiny_union.PROMAX_FILE  # single .safetensors, 8 control types


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", "model": "tiny-sdxl", **kw})


def union_pipe(engine, net, kind: str = ""):
    comps = engine.load("tiny-sdxl").components
    parts = {k: comps[k] for k in ("vae", "text_encoder", "text_encoder_2", "tokenizer")}
    parts |= {"tokenizer_2": comps["tokenizer_2"], "unet": comps["unet"], "controlnet": net}
    parts["scheduler"] = make_scheduler("Euler", comps["scheduler"].config)
    pipe = getattr(diffusers, f"StableDiffusionXLControlNetUnion{kind}Pipeline")(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load(engine, cn_dir, name):
    path = cn_dir / name if name == UNION else cn_dir / f"{name}.safetensors"
    info = controlnet_files.inspect(path)
    unet_config = dict(engine.load("tiny-sdxl").components["unet"].config)
    return controlnet_files.load(info, unet_config, torch.float32, "cpu")


@pytest.fixture(scope="module")
def sdxl_base(engine):
    return engine.run(job()).images[0].image


# --- files --------------------------------------------------------------------------


def test_folder_and_single_file_are_identified_as_union(cn_dir):
    folder = controlnet_files.inspect(cn_dir / UNION)
    single = controlnet_files.inspect(cn_dir / f"{PROMAX}.safetensors")
    assert (folder.layout, single.layout) == ("union_folder", "union")
    assert (folder.detail["num_control_type"], folder.detail["promax"]) == (6, False)
    assert (single.detail["num_control_type"], single.detail["promax"]) == (8, True)
    for info in (folder, single):
        assert info.sdxl and info.type is None  # the type is chosen per unit
        controlnet_files.check_supported(info)  # no longer refused
    # The single file is read from its keys alone: the union parts and diffusers' layout.
    assert single.context_dim == folder.context_dim and single.hint_channels == (16, 32, 96, 256)
    assert single.detail["num_trans_channel"] == single.base_channels


def test_single_file_loads_the_exact_weights(engine, cn_dir):
    net = load(engine, cn_dir, PROMAX)
    assert isinstance(net, diffusers.ControlNetUnionModel)
    assert net.config.num_control_type == 8
    built = tiny_union.random_union(tiny_union.SEED + 71, tiny_union.PROMAX_TYPES)
    state = net.state_dict()
    assert state.keys() == built.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in built.state_dict().items())
    assert not any(p.is_meta for p in net.parameters())


def test_truncated_single_file_is_a_clear_error(engine, cn_dir, tmp_path):
    data = (cn_dir / f"{PROMAX}.safetensors").read_bytes()
    bad = tmp_path / "controlnet-union-broken.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    info = controlnet_files.inspect(bad)
    assert info.layout == "union"
    with pytest.raises(DreamwireError) as err:
        controlnet_files.load(
            info, dict(engine.load("tiny-sdxl").components["unet"].config), torch.float32, "cpu"
        )
    assert err.value.code == ErrorCode.MODEL_CORRUPT


# --- control types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_type", "index"),
    [
        ("openpose", 0),
        ("depth", 1),
        ("softedge", 2),
        ("scribble", 2),
        ("canny", 3),
        ("lineart", 3),
        ("lineart_anime", 3),
        ("mlsd", 3),
        ("normalbae", 4),
        ("seg", 5),
        ("tile", 6),
        ("inpaint", 7),
    ],
)
def test_control_types_map_to_xinsir_modes(cn_dir, unit_type, index):
    promax = controlnet_files.inspect(cn_dir / f"{PROMAX}.safetensors")
    assert union.control_mode(unit_type, promax, "unit") == index
    plain = controlnet_files.inspect(cn_dir / UNION)
    if index < 6:
        assert union.control_mode(unit_type, plain, "unit") == index
    else:  # tile and repaint are ProMax's extra modes
        with pytest.raises(DreamwireError) as err:
            union.control_mode(unit_type, plain, "unit")
        assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "ProMax" in err.value.message


@pytest.mark.parametrize("unit_type", ["shuffle", "ip2p"])
def test_types_without_a_union_mode_fail_before_generating(engine, unit_type):
    seen = []
    unit = ControlUnit(type=unit_type, image=noise_image(40), model=PROMAX)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[unit]), on_progress=seen.append)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and unit_type in err.value.message
    assert not any(p.step > 0 for p in seen)


# --- running ------------------------------------------------------------------------


def test_one_unit_equals_diffusers_union_pipeline(engine, cn_dir, seen, sdxl_base):
    ctl = noise_image(41)
    unit = ControlUnit(type="depth", image=ctl, weight=0.8, model=UNION)
    out = engine.run(job(controls=[unit])).images[0].image
    group = seen.stacks["controlnet"].nets[0]
    assert isinstance(group, union.UnionGroup) and group.modes == [1]
    ref = run_job_settings(
        union_pipe(engine, load(engine, cn_dir, UNION)),
        control_image=[Image.fromarray(ctl)],
        control_mode=[1],
        controlnet_conditioning_scale=[0.8],
        **SIZE,
    )
    assert maxdiff(out, ref) <= 1
    assert maxdiff(out, sdxl_base) > 10  # the union model really steers the image
    # Another control type, same image: the mode is an input of the model.
    other = engine.run(
        job(controls=[ControlUnit(type="canny", image=ctl, weight=0.8, model=UNION)])
    )
    assert maxdiff(other.images[0].image, out) > 0


def test_two_units_on_one_union_model_are_one_call(engine, cn_dir, seen):
    canny, depth = noise_image(42), noise_image(43)
    units = [
        ControlUnit(type="canny", image=canny, weight=0.7, model=f"{PROMAX}.safetensors"),
        ControlUnit(type="depth", image=depth, weight=1.2, model=PROMAX, start=0.5),
    ]
    out = engine.run(job(controls=units)).images[0].image
    stack = seen.stacks["controlnet"]
    assert len(stack.nets) == 1 and stack.nets[0].modes == [3, 1]
    # A1111's window: start 0.5 of 4 steps skips steps 0 and 1 (diffusers' rule agrees);
    # the skipped unit keeps its place in the union call with scale 0, as in diffusers.
    assert [stack.nets[0].members[1].unit.active(i / 4) for i in range(4)] == [
        False, False, True, True
    ]  # fmt: skip
    ref = run_job_settings(
        union_pipe(engine, load(engine, cn_dir, PROMAX)),
        control_image=[Image.fromarray(canny), Image.fromarray(depth)],
        control_mode=[3, 1],
        controlnet_conditioning_scale=[0.7, 1.2],
        control_guidance_start=[0.0, 0.5],
        **SIZE,
    )
    assert maxdiff(out, ref) <= 1


def test_a_type_without_its_own_controlnet_falls_back_to_a_union_model(engine, seen):
    """tiny-sdxl has no canny or tile ControlNet: an unnamed unit takes a Union model that
    has the mode (ProMax first), as Krita AI Diffusion does for SDXL."""
    ctl = noise_image(47)
    for kind, mode in (("canny", 3), ("tile", 6)):  # tile: only ProMax has it
        auto = engine.run(job(controls=[ControlUnit(type=kind, image=ctl)])).images[0].image
        group = seen.stacks["controlnet"].nets[0]
        assert isinstance(group, union.UnionGroup) and group.modes == [mode]
        named = ControlUnit(type=kind, image=ctl, model=PROMAX)
        assert maxdiff(auto, engine.run(job(controls=[named])).images[0].image) == 0


def test_union_mixes_with_an_ordinary_controlnet(engine, seen, sdxl_base):
    ctl = noise_image(44)
    only_union = engine.run(job(controls=[ControlUnit(type="canny", image=ctl, model=PROMAX)]))
    units = [
        ControlUnit(type="canny", image=ctl, model=PROMAX),
        ControlUnit(type="depth", image=noise_image(45), model="diffusers_xl_depth_full"),
    ]
    mixed = engine.run(job(controls=units)).images[0].image
    nets = seen.stacks["controlnet"].nets
    assert isinstance(nets[0], union.UnionGroup) and isinstance(nets[1], diffusers.ControlNetModel)
    assert maxdiff(mixed, only_union.images[0].image) > 0
    assert maxdiff(mixed, sdxl_base) > 0


def test_sd1_checkpoint_with_sdxl_union_is_refused(engine):
    seen = []
    unit = ControlUnit(type="depth", image=noise_image(46), model=UNION)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(model="tiny-sd1", controls=[unit]), on_progress=seen.append)
    assert err.value.code == ErrorCode.MODEL_MISMATCH and UNION in err.value.message
    assert not any(p.step > 0 for p in seen)


def test_repaint_image_marks_pixels_black(cn_dir):
    info = controlnet_files.inspect(cn_dir / f"{PROMAX}.safetensors")
    image = torch.full((1, 3, 8, 8), 0.5)
    image[..., :4, :] = -1.0  # the unit's inpaint tensor marks pixels to repaint with -1
    unit = union.StackUnit()
    nets, units, images = union.fold([info], ["inpaint"], [None], [unit], [image])
    member = nets[0].members[0]
    assert member.mode == 7 and member.image[..., :4, :].eq(0).all()
    assert member.image[..., 4:, :].eq(0.5).all() and np.isclose(units[0].weight, 1.0)


def test_img2img_with_union_equals_diffusers(engine, cn_dir):
    init, ctl = noise_image(47), noise_image(48)
    unit = ControlUnit(type="lineart", image=ctl, weight=0.9, model=UNION)
    out = engine.run(job(init_image=init, strength=0.75, controls=[unit])).images[0].image
    pipe = union_pipe(engine, load(engine, cn_dir, UNION), "Img2Img")
    ref = run_job_settings(
        pipe,
        image=Image.fromarray(init),
        **a1111_steps(4, 0.75),  # A1111's img2img: all 4 steps, from the top
        control_image=[Image.fromarray(ctl)],
        control_mode=[3],
        controlnet_conditioning_scale=[0.9],
        **SIZE,
    )
    assert maxdiff(out, ref) <= 1


def test_inpaint_with_promax_repaint_mode(engine, seen):
    init = noise_image(49)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    unit = ControlUnit(type="inpaint", image=init, model=PROMAX)
    out = engine.run(job(init_image=init, mask=mask, mask_blur=0, strength=1.0, controls=[unit]))
    member = seen.stacks["controlnet"].nets[0].members[0]
    assert member.mode == 7
    # The pixels to repaint reach the model black (xinsir's convention), the rest as given.
    image = member.image[0]
    assert image[:, 24:40, 24:40].eq(0).all() and image[:, :8, :8].gt(0).any()
    assert out.images[0].image.shape == (64, 64, 3)


def test_units_differing_in_control_mode_or_hires_softness_split_the_call(engine, seen):
    from dreamwire.shared.job import HiresFix

    units = [
        ControlUnit(type="canny", image=noise_image(50), model=PROMAX),
        ControlUnit(type="depth", image=noise_image(51), model=PROMAX),
        ControlUnit(type="seg", image=noise_image(52), model=PROMAX, control_mode="controlnet"),
    ]
    hires = HiresFix(scale=1.5, denoise=0.5, upscaler="Latent")
    out = engine.run(job(controls=units, hires=hires)).images[0].image
    assert out.shape == (96, 96, 3)
    # The last stack is the Hires.fix pass's, where A1111 forces soft injection for canny:
    # canny, depth and seg each need their own rule, so three calls of the one model.
    stack = seen.stacks["controlnet"]
    assert [n.modes for n in stack.nets] == [[3], [1], [5]]
    assert [(u.mode, u.force_soft) for u in stack.units] == [
        ("balanced", True),
        ("balanced", False),
        ("controlnet", False),
    ]
    assert len({id(n.net) for n in stack.nets}) == 1  # loaded once
