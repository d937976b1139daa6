"""Flux ControlNets (InstantX/Shakker FluxControlNetModel) through the engine's ControlNet
conditioner equal diffusers' Flux ControlNet pipelines (same components, seed and thread
count: bit for bit), in their folder and single-file forms, Union modes included; XLabs'
BFL-keyed files (found in ComfyUI's models/xlabs/controlnets) converted and equal to
FluxControlNetPipeline with the net they were written from; what Flux cannot run
(T2I-Adapters, SD ControlNets, a malformed XLabs file, XLabs mixed with InstantX) is refused
by name, and a Flux ControlNet on an SD model too."""

from __future__ import annotations

import shutil

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.backend.engine import noise
from dreamwire.backend.tiny import flux_controlnet as tiny_cn
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.engine.reference import a1111_steps
from tests.support.engines import cpu_engine

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-flux", prompt=PROMPT, sampler="Euler", steps=4, cfg=1.0, width=64, height=64, seed=5
)
PARTS = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")
SD_CANNY = "control_v11p_sd15_canny"
T2I_DEPTH = "t2iadapter_depth_sd15v2"
XLABS = "flux-canny-controlnet-v3"  # XLabs' name, in ComfyUI's models/xlabs/controlnets
XLABS_BAD = "flux-depth-controlnet-v3"  # XLabs' keys, a hint block x-flux never had
PRO2 = "FLUX.1-dev-ControlNet-Union-Pro-2.0"  # no mode input: a Union by its name


def _blocks(seed: int) -> np.ndarray:
    """Blocky shapes: structure at the latent scale, so the control image matters."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, axis=0).repeat(8, axis=1))


CONTROL = _blocks(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from dreamwire.backend.tiny import build, t2i_adapter
    from dreamwire.backend.tiny.conditioning import random_controlnet
    from dreamwire.backend.tiny.files import save_tensors
    from dreamwire.backend.tiny.flux import flux_components, write_flux_diffusers_folder

    root = tmp_path_factory.mktemp("flux-control")
    models = root / "models"
    write_flux_diffusers_folder(flux_components(), models / "Stable-diffusion" / "tiny-flux")
    build.write_sd1_checkpoint(
        build.sd1_components(), models / "Stable-diffusion" / "tiny-sd1.safetensors"
    )
    cn = models / "ControlNet"
    written = tiny_cn.write_controlnets(cn)
    shutil.copy(written[tiny_cn.SINGLE_FILE], cn / f"{PRO2}.safetensors")
    random_controlnet("tiny-sd1", 3).save_pretrained(cn / SD_CANNY, safe_serialization=True)
    adapter = t2i_adapter.random_adapter(
        3, in_channels=3, channels=t2i_adapter.CHANNELS, num_res_blocks=2, downscale_factor=8
    )
    adapter.save_pretrained(cn / T2I_DEPTH, safe_serialization=True)
    xlabs = tiny_cn.flux_controlnet(seed=tiny_cn.SEED + 3, xlabs=True)
    tiny_cn.write_xlabs(xlabs, models / "xlabs" / "controlnets" / f"{XLABS}.safetensors")
    # XLabs' marks with wrong sizes: identified by its keys, refused by its shapes.
    marks = ("double_blocks.0.img_attn.qkv.weight", "controlnet_blocks.0.weight")
    marks += ("pos_embed_input.weight", "input_hint_block.0.weight")
    save_tensors({k: torch.zeros(2, 2) for k in marks}, cn / f"{XLABS_BAD}.safetensors")
    return root


@pytest.fixture(scope="module")
def engine(root):
    return cpu_engine(root)


def unit(model: str = tiny_cn.FOLDER, type: str = "canny", **kw) -> ControlUnit:
    kw.setdefault("image", CONTROL)
    return ControlUnit(type=type, model=model, preprocessor="none", **kw)


def job(*units: ControlUnit, **kw) -> Job:
    return Job(**{**BASE, "controls": list(units), **kw})


def reference(engine, cls_name: str, net, **kwargs) -> np.ndarray:
    comps = engine.load("tiny-flux", "").components
    pipe = getattr(diffusers, cls_name)(
        **{k: comps[k] for k in PARTS},
        controlnet=net,
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            control_image=kwargs.pop("images", Image.fromarray(CONTROL)),
            num_inference_steps=kwargs.pop("num_inference_steps", 4),
            generator=noise.generators([5]),
            output_type="np",
            guidance_scale=3.5,
            height=64,
            width=64,
            **kwargs,
        )
    return (out.images[0] * 255).round().astype(np.uint8)


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def plain(engine) -> np.ndarray:
    return engine.run(job()).images[0].image


def test_folder_controlnet_equals_diffusers_and_changes_the_image(engine, root):
    result = engine.run(job(unit()))
    net = diffusers.FluxControlNetModel.from_pretrained(root / "models/ControlNet" / tiny_cn.FOLDER)
    assert diff(result.images[0].image, reference(engine, "FluxControlNetPipeline", net)) == 0
    assert diff(result.images[0].image, plain(engine)) > 0
    assert f'ControlNet 0: "Module: none, Model: {tiny_cn.FOLDER}' in result.images[0].infotext


def test_weight_and_a1111_window_reach_the_pipeline(engine):
    # A1111 skips step i of n when i/n < start or i/n > end: end 0.5 keeps steps 0-2 of 4,
    # which is diffusers' end 0.75 ((i+1)/n <= end); start 0.25 is the same in both.
    result = engine.run(job(unit(tiny_cn.SINGLE_FILE, "depth", weight=0.5, start=0.25, end=0.5)))
    net = tiny_cn.flux_controlnet(seed=tiny_cn.SEED + 1)  # the single file's weights
    expected = reference(
        engine,
        "FluxControlNetPipeline",
        net,
        controlnet_conditioning_scale=0.5,
        control_guidance_start=0.25,
        control_guidance_end=0.75,
    )
    assert diff(result.images[0].image, expected) == 0
    full = engine.run(job(unit(tiny_cn.SINGLE_FILE, "depth"))).images[0].image
    assert diff(result.images[0].image, full) > 0
    # Union-Pro 2.0 takes no mode: a soft-edge unit runs its (here: the same) weights as is.
    pro2 = engine.run(job(unit(PRO2, "softedge"))).images[0].image
    assert diff(pro2, full) == 0


def test_union_runs_the_unit_types_mode(engine):
    net = tiny_cn.flux_controlnet(num_mode=tiny_cn.NUM_MODE, seed=tiny_cn.SEED + 2)
    depth = engine.run(job(unit(tiny_cn.UNION_FILE, "depth"))).images[0].image
    expected = reference(engine, "FluxControlNetPipeline", net, control_mode=2)
    assert diff(depth, expected) == 0
    canny = engine.run(job(unit(tiny_cn.UNION_FILE, "canny"))).images[0].image
    assert diff(canny, reference(engine, "FluxControlNetPipeline", net, control_mode=0)) == 0
    assert diff(depth, canny) > 0
    # A type the Union was not trained on is refused before sampling, naming what it runs.
    with pytest.raises(DreamwireError) as err:
        engine.run(job(unit(tiny_cn.UNION_FILE, "seg")))
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and "no seg mode" in err.value.message


def test_xlabs_file_runs_as_diffusers_runs_the_net_it_was_written_from(engine):
    # Found in ComfyUI's folder, identified and converted; diffusers' pipeline then feeds
    # it pixels and repeats its samples over the transformer's blocks (XLabs' rule).
    result = engine.run(job(unit(XLABS, weight=0.8))).images[0]
    net = tiny_cn.flux_controlnet(seed=tiny_cn.SEED + 3, xlabs=True)
    expected = reference(engine, "FluxControlNetPipeline", net, controlnet_conditioning_scale=0.8)
    assert diff(result.image, expected) == 0
    assert diff(result.image, plain(engine)) > 0
    assert f"Model: {XLABS}" in result.infotext


def test_two_controlnets_sum_as_diffusers_multi_controlnet(engine):
    second = _blocks(2)
    units = (unit(), unit(tiny_cn.UNION_FILE, "depth", image=second, weight=0.7))
    result = engine.run(job(*units)).images[0].image
    nets = [
        tiny_cn.flux_controlnet(seed=tiny_cn.SEED),
        tiny_cn.flux_controlnet(num_mode=tiny_cn.NUM_MODE, seed=tiny_cn.SEED + 2),
    ]
    expected = reference(
        engine,
        "FluxControlNetPipeline",
        diffusers.FluxMultiControlNetModel(nets),
        images=[Image.fromarray(CONTROL), Image.fromarray(second)],
        control_mode=[None, 2],
        controlnet_conditioning_scale=[1.0, 0.7],
    )
    assert diff(result, expected) == 0


def _net(kind: str):
    """(file name, the net it was written from): InstantX's folder or XLabs' file."""
    if kind == "xlabs":
        return XLABS, tiny_cn.flux_controlnet(seed=tiny_cn.SEED + 3, xlabs=True)
    return tiny_cn.FOLDER, tiny_cn.flux_controlnet(seed=tiny_cn.SEED)


@pytest.mark.parametrize("kind", ["instantx", "xlabs"])
def test_img2img_with_a_controlnet_equals_diffusers(engine, init_image, kind):
    name, net = _net(kind)
    result = engine.run(job(unit(name), init_image=init_image, strength=0.6))
    expected = reference(
        engine,
        "FluxControlNetImg2ImgPipeline",
        net,
        image=Image.fromarray(init_image),
        **a1111_steps(4, 0.6, flow=True),  # A1111/Forge: int(0.6 * 4) + 1 = 3 steps of 4
    )
    assert diff(result.images[0].image, expected) == 0


@pytest.mark.parametrize("kind", ["instantx", "xlabs"])
def test_inpaint_with_a_controlnet_equals_diffusers(engine, init_image, mask, kind):
    name, net = _net(kind)
    inpaint = dict(init_image=init_image, mask=mask, mask_blur=0, strength=0.9)
    result = engine.run(job(unit(name), **inpaint))
    generated = reference(
        engine,
        "FluxControlNetInpaintPipeline",
        net,
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        **a1111_steps(4, 0.9, flow=True),  # A1111/Forge: all 4 steps
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0


@pytest.mark.parametrize(
    ("control", "code", "words"),
    [
        (unit(T2I_DEPTH, "depth"), ErrorCode.MODEL_UNSUPPORTED, (T2I_DEPTH, "T2I-Adapter")),
        (unit(SD_CANNY), ErrorCode.MODEL_MISMATCH, (SD_CANNY, "SD1.x", "Flux.1")),
        (unit(XLABS_BAD), ErrorCode.MODEL_CORRUPT, (XLABS_BAD, "XLabs", "x-flux")),
        (unit(), ErrorCode.MODEL_UNSUPPORTED, (XLABS, tiny_cn.FOLDER, "mix")),
        (unit(control_mode="prompt"), ErrorCode.MODEL_UNSUPPORTED, ("balanced",)),
    ],
    ids=["t2i-adapter", "sd-controlnet", "xlabs-malformed", "xlabs-with-instantx", "soft-inj"],
)
def test_what_flux_cannot_run_is_refused_by_name(engine, control, code, words):
    # The mix case pairs the InstantX unit with an XLabs one.
    units = (unit(XLABS), control) if XLABS in words else (control,)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(*units))
    assert err.value.code is code
    for word in words:
        assert word in err.value.message


def test_flux_controlnet_on_an_sd_model_is_refused_by_name(engine):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(unit(), model="tiny-sd1", steps=2))
    assert err.value.code is ErrorCode.MODEL_MISMATCH
    assert tiny_cn.FOLDER in err.value.message and "is for Flux.1" in err.value.message


def test_flux_control_types_in_the_welcome(engine, root):
    from dreamwire.backend.conditioning import controlnet_files
    from dreamwire.backend.conditioning.capabilities import control_capabilities
    from dreamwire.backend.conditioning.unit_resolution import pick

    cn = root / "models" / "ControlNet"
    single = controlnet_files.inspect(cn / f"{tiny_cn.SINGLE_FILE}.safetensors")
    union = controlnet_files.inspect(cn / f"{tiny_cn.UNION_FILE}.safetensors")
    pro2 = controlnet_files.inspect(cn / f"{PRO2}.safetensors")
    assert (single.family, single.type, union.type, pro2.type) == ("Flux.1", "depth", None, None)
    caps = control_capabilities(engine.library, pick)
    flux = caps["control_types"]["flux"]
    # Of two canny nets the first by name; the malformed XLabs depth file is passed over.
    assert flux["canny"] == XLABS and flux["depth"] == tiny_cn.SINGLE_FILE
    assert flux["tile"] == tiny_cn.UNION_FILE  # through its mode 1
    assert flux["softedge"] == PRO2 and "seg" not in flux
    assert "no seg ControlNet" in caps["control_missing"]["flux"]["seg"]
    # SD keeps its own: the SD ControlNet serves SD1.x, never a Flux file.
    assert caps["control_types"]["sd1"]["canny"] == SD_CANNY
