"""Qwen-Image ControlNets (InstantX's Qwen-Image-ControlNet-Union, diffusers
QwenImageControlNetModel) through the engine's ControlNet conditioner: found in ComfyUI's
models/controlnet, identified, loaded offline and run as diffusers' QwenImageControlNetPipeline
runs them, one unit and several (same components, seed and thread count: bit for bit);
InstantX's Inpainting net serves an inpaint job as diffusers' QwenImageControlNetInpaintPipeline
does; what Qwen's ControlNet pipelines cannot do is refused by name, and a Qwen ControlNet is
refused for every other family before anything loads."""

from __future__ import annotations

import json

import diffusers
import numpy as np
import pytest
import torch

from dreamwire import catalog
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.qwen.reference import BASE, PROMPT, maxdiff, reference
from tests.support.engines import cpu_engine

MODEL = "tiny-qwen-image"
NET = "Qwen-Image-InstantX-ControlNet-Union"
INPAINTING = "Qwen-Image-InstantX-ControlNet-Inpainting"


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(
        rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    )


CONTROL, OTHER = _picture(1), _picture(2)


@pytest.fixture(scope="module")
def root(qwen_root, tmp_path_factory):
    from dreamwire.backend.tiny.qwen_controlnet import qwen_controlnet, write_qwen_controlnet

    root = tmp_path_factory.mktemp("qwen-control") / "ComfyUI"
    (root / "models").mkdir(parents=True)
    (root / "models" / "Stable-diffusion").symlink_to(qwen_root / "models" / "Stable-diffusion")
    nets = root / "models" / "controlnet"
    write_qwen_controlnet(qwen_controlnet(), nets / f"{NET}.safetensors")
    write_qwen_controlnet(qwen_controlnet(4), nets / f"{INPAINTING}.safetensors")
    return root


@pytest.fixture(scope="module")
def engine(root):
    return cpu_engine(root)


def unit(**kw) -> ControlUnit:
    return ControlUnit(**{"type": "canny", "preprocessor": "none", "image": CONTROL, **kw})


def job(*units: ControlUnit, **kw) -> Job:
    return Job(**{"model": MODEL, "prompt": PROMPT, **BASE, "controls": list(units), **kw})


def pil(picture: np.ndarray):
    return diffusers.utils.numpy_to_pil(picture / 255.0)[0]


def test_union_txt2img_equals_diffusers_one_unit_and_several(engine):
    from diffusers import QwenImageMultiControlNetModel

    from dreamwire.backend.tiny.qwen_controlnet import qwen_controlnet

    net = qwen_controlnet()  # the file's weights

    def expected(controlnet, control_image, scale, **call) -> np.ndarray:
        return reference(
            engine,
            MODEL,
            "QwenImageControlNetPipeline",
            extra={"controlnet": controlnet},
            control_image=control_image,
            controlnet_conditioning_scale=scale,
            height=64,
            width=64,
            **call,
        )[0]

    one = engine.run(job(unit()))
    got = one.images[0].image
    assert maxdiff(got, expected(net, pil(CONTROL), 1.0)) == 0
    assert f"Model: {NET}" in one.images[0].infotext
    # Two units on the Union (diffusers' Multi model: one net, a picture per condition),
    # the second at half weight from half-way: its weight scales the samples as diffusers'
    # conditioning scale, and A1111's window (skip step i of n when i/n < start) is
    # diffusers' at 2 steps.
    second = unit(type="depth", image=OTHER, weight=0.5, start=0.5)
    two = engine.run(job(unit(), second)).images[0].image
    both = expected(
        QwenImageMultiControlNetModel([net]),
        [pil(CONTROL), pil(OTHER)],
        [1.0, 0.5],
        control_guidance_start=[0.0, 0.5],
        control_guidance_end=[1.0, 1.0],
    )
    assert maxdiff(two, both) == 0 and maxdiff(two, got) > 0


def test_the_inpainting_net_serves_an_inpaint_job_as_diffusers_pipeline(engine, init_image, mask):
    from PIL import Image

    from dreamwire.backend.canvas.masks import composite
    from dreamwire.backend.conditioning.controlnet_conditioner import CONTROL_LATENT_SEED
    from dreamwire.backend.tiny.qwen_controlnet import qwen_controlnet

    # The unit needs no picture of its own: the net's control is the job's picture and mask.
    inpainting = unit(type="inpaint", model=INPAINTING, image=None, weight=0.8)
    kw = dict(init_image=init_image, mask=mask, mask_blur=0, strength=1.0)
    got = engine.run(job(inpainting, **kw)).images[0]
    net = qwen_controlnet(4)  # the file's weights (built from a seed: before the next one)
    # The pipeline VAE-encodes the masked picture with torch's global generator.
    torch.manual_seed(CONTROL_LATENT_SEED)
    (generated,) = reference(
        engine,
        MODEL,
        "QwenImageControlNetInpaintPipeline",
        extra={"controlnet": net},
        control_image=pil(init_image),
        control_mask=Image.fromarray(mask),
        controlnet_conditioning_scale=0.8,
        height=64,
        width=64,
    )
    assert maxdiff(got.image, composite(init_image, generated, mask)) == 0
    assert f"Model: {INPAINTING}" in got.infotext


def test_what_qwen_controlnets_cannot_do_is_refused(engine, init_image, mask):
    unsupported, not_found = ErrorCode.MODEL_UNSUPPORTED, ErrorCode.CONTROLNET_NOT_FOUND
    inpainting = unit(type="inpaint", model=INPAINTING, image=None)
    for bad, code, words in (
        (job(unit(), init_image=init_image, strength=0.6), unsupported, "img2img"),
        (job(unit(), init_image=init_image, mask=mask), unsupported, "inpaint"),
        (job(unit(type="tile", model=NET)), unsupported, "no tile mode"),
        (job(unit(type="tile")), not_found, "no tile ControlNet"),
        (job(unit(control_mode="controlnet")), unsupported, "balanced"),
        (job(unit(type="inpaint", model=INPAINTING)), unsupported, "inpaint job"),
        (
            job(inpainting, init_image=init_image, mask=mask, strength=0.7),
            unsupported,
            "strength 1",
        ),
        (job(inpainting, unit(), init_image=init_image, mask=mask), unsupported, "units 0 and 1"),
    ):
        with pytest.raises(DreamwireError) as err:
            engine.run(bad)
        assert err.value.code == code, err.value.message
        assert words in err.value.message, err.value.message


@pytest.mark.parametrize(
    ("arch", "family"), [("sd1", "sd1"), ("flux-dev", "flux"), ("zimage-turbo", "zimage")]
)
def test_a_qwen_controlnet_is_refused_for_other_families_by_name(root, arch, family):
    from dreamwire.backend.conditioning import controlnet_files

    info = controlnet_files.inspect(root / "models" / "controlnet" / f"{NET}.safetensors")
    denoiser = "unet" if family == "sd1" else "transformer"
    config = json.loads((catalog.config_dir(arch) / denoiser / "config.json").read_text())
    with pytest.raises(DreamwireError) as err:
        controlnet_files.check_compatible(info, config, "other-model", family)
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert f"{NET} is for Qwen-Image" in err.value.message


def test_files_and_folders_are_identified_and_load(engine, root, tmp_path):
    from dreamwire.backend.conditioning import controlnet_files
    from dreamwire.backend.tiny.qwen_controlnet import qwen_controlnet

    single = controlnet_files.inspect(root / "models" / "controlnet" / f"{NET}.safetensors")
    assert (single.layout, single.family, single.type) == ("qwen", "Qwen-Image", None)
    inpainting = controlnet_files.inspect(
        root / "models" / "controlnet" / f"{INPAINTING}.safetensors"
    )
    assert (inpainting.family, inpainting.type) == ("Qwen-Image", "inpaint")
    net = qwen_controlnet()
    folder = tmp_path / "Qwen-Image-ControlNet-Union"
    net.save_pretrained(folder)
    info = controlnet_files.inspect(folder)
    assert (info.layout, info.family) == ("qwen-image_folder", "Qwen-Image")
    transformer = dict(engine.load(MODEL, "").components["transformer"].config)
    want = net.state_dict()
    for found in (single, info):
        controlnet_files.check_compatible(found, transformer, MODEL, "qwen-image")
        loaded = controlnet_files.load(found, transformer, torch.float32, "cpu")
        assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())


def test_instantx_real_widths_give_its_config():
    """InstantX's Union at Qwen-Image's real widths (meta device): 5 blocks, 24 x 128 heads,
    Qwen2.5-VL's 3584-wide text; the Inpainting net's 4 extra control channels."""
    from diffusers import QwenImageControlNetModel

    from dreamwire.backend.library import qwen_controlnet as headers

    base = json.loads(
        (catalog.config_dir("qwen-image") / "transformer" / "config.json").read_text()
    )
    for extra in (0, 4):
        with torch.device("meta"):
            net = QwenImageControlNetModel(num_layers=5, extra_condition_channels=extra)
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert headers.layout(set(shapes)) == "qwen"
        config = headers.config_from_shapes(shapes, base)
        own = {k: v for k, v in net.config.items() if not k.startswith("_")}
        assert {k: config[k] for k in own} == {
            **own,
            "axes_dims_rope": list(own["axes_dims_rope"]),
        }


def test_the_welcome_offers_the_union_s_types(engine):
    from dreamwire.backend.conditioning.capabilities import control_capabilities
    from dreamwire.backend.conditioning.unit_resolution import pick

    caps = control_capabilities(engine.library, pick)
    served = caps["control_types"]["qwen-image"]
    assert all(served.get(t) == NET for t in ("canny", "softedge", "depth", "openpose"))
    assert served.get("inpaint") == INPAINTING  # for inpaint jobs (the plan checks the mode)
    assert "tile" not in served and "tile" in caps["control_missing"]["qwen-image"]
