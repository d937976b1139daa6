"""BFL's Flux Control LoRAs (flux1-canny-dev-lora in BFL's key layout) serve canny/depth
units on Flux dev when no Flux ControlNet of the type is installed: the engine equals
diffusers' FluxControlPipeline family after diffusers' own load_lora_weights + fuse_lora of
the same weights, the transformer is put back exactly after the job, the welcome offers the
types, and what a Control model cannot do is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.support import flux_lora_reference

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-flux", prompt=PROMPT, sampler="Euler", steps=3, cfg=1.0, width=64, height=64, seed=5
)
CANNY = "flux1-canny-dev-lora"


def _blocks(seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, axis=0).repeat(8, axis=1))


CONTROL = _blocks(2)


@pytest.fixture(scope="module")
def setup(flux_root, tmp_path_factory):
    """An engine with the conditioners over tiny-flux and a Control LoRA in models/Lora,
    and the LoRA's weights under diffusers' names."""
    from dreamwire.backend import conditioning
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny.flux_control import control_lora

    root = tmp_path_factory.mktemp("flux-control-lora")
    checkpoints = root / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    for name in ("tiny-flux", "tiny-flux-kontext"):
        (checkpoints / name).symlink_to(flux_root / "models" / "Stable-diffusion" / name)
    engine = Engine(
        ModelLibrary([root]),
        device="cpu",
        extensions=conditioning.engine_extensions(),
        cache_size=1,
    )
    transformer = engine.load("tiny-flux").components["transformer"]
    loras = root / "models" / "Lora"
    loras.mkdir(parents=True)
    _, peft = control_lora({"transformer": transformer}, loras / f"{CANNY}.safetensors")
    engine.library.refresh()  # as the server does when the artist adds a file
    return engine, peft


def job(**kw) -> Job:
    return Job(**{**BASE, **kw})


def unit(**kw) -> ControlUnit:
    return ControlUnit(**{"type": "canny", "image": CONTROL, **kw})


def reference(engine, peft, cls_name: str, weight: float = 1.0, **kwargs) -> np.ndarray:
    """diffusers alone: its Control LoRA loading (x_embedder widened, norms replaced) and
    fuse_lora, on a copy of the model's transformer."""
    comps = engine.load("tiny-flux").components
    control = Image.fromarray(CONTROL)
    return flux_lora_reference.run(
        comps, cls_name, peft, weight, PROMPT, 3, 5, control_image=control, **kwargs
    )


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_a_canny_unit_runs_the_control_lora_as_diffusers_does(setup):
    engine, peft = setup
    transformer = engine.load("tiny-flux").components["transformer"]
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    x_embedder = transformer.x_embedder
    plain = engine.run(job()).images[0].image

    result = engine.run(job(controls=[unit(weight=0.8)])).images[0]
    expected = reference(engine, peft, "FluxControlPipeline", weight=0.8)
    assert diff(result.image, expected) <= 1
    assert diff(result.image, plain) > 10  # the control image steered it
    assert f"Model: {CANNY} [" in result.infotext and "ControlNet 0:" in result.infotext

    # Put back exactly: the same input layer, its config, every weight and norm.
    assert transformer.x_embedder is x_embedder and transformer.config.in_channels == 64
    after = transformer.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert diff(engine.run(job()).images[0].image, plain) == 0


def test_img2img_with_the_control_lora_equals_diffusers(setup, init_image):
    engine, peft = setup
    result = engine.run(job(controls=[unit()], init_image=init_image, strength=0.7))
    expected = reference(
        engine,
        peft,
        "FluxControlImg2ImgPipeline",
        image=Image.fromarray(init_image),
        # A1111/Forge run int(0.7 * 3) + 1 = 3 of the job's 3 steps: the whole schedule,
        # which diffusers' own pipeline runs at strength 1.
        strength=1.0,
    )
    assert diff(result.images[0].image, expected) <= 1


def test_the_welcome_offers_canny_through_the_control_lora(setup):
    engine, _ = setup
    caps = engine.capabilities()
    assert caps["control_types"]["flux"]["canny"] == CANNY
    depth = caps["control_missing"]["flux"]["depth"]
    assert "flux1-depth-dev-lora.safetensors" in depth


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (dict(cfg=3.0), "no negative prompt"),
        (dict(controls=[ControlUnit(type="canny", image=CONTROL, start=0.3)]), "every step"),
        (dict(controls=[unit(), unit()]), "runs alone"),
        (dict(controls=[unit(type="depth")]), "flux1-depth-dev-lora.safetensors"),
        (dict(model="tiny-flux-kontext"), "made from Flux.1 dev"),
    ],
)
def test_what_a_control_model_cannot_do_is_refused_by_name(setup, changes, words):
    engine, _ = setup
    with pytest.raises(DreamwireError) as err:
        engine.run(job(**{"controls": [unit()], **changes}))
    assert words in err.value.message
    assert err.value.code in (ErrorCode.MODEL_UNSUPPORTED, ErrorCode.CONTROLNET_NOT_FOUND)
    transformer = engine.load("tiny-flux").components["transformer"]
    assert transformer.config.in_channels == 64  # nothing stayed patched


def test_inpaint_with_the_control_lora_keeps_the_unmasked_picture(setup, init_image, mask):
    engine, _ = setup
    result = engine.run(job(controls=[unit()], init_image=init_image, mask=mask, mask_blur=0))
    image = result.images[0].image
    outside = mask == 0
    assert np.array_equal(image[outside], init_image[outside])
    assert diff(image, init_image) > 0 and "Inpaint model" not in result.images[0].infotext


# --- the full Control models (flux1-depth-dev.safetensors in a checkpoint folder) --------
DEPTH = "flux1-depth-dev"


@pytest.fixture(scope="module")
def full(setup):
    """The setup's library with a tiny full Depth Control model (BFL layout, img_in 128
    wide) among its checkpoints, and that transformer."""
    from diffusers import FluxTransformer2DModel

    from dreamwire.backend.tiny.files import save_tensors
    from dreamwire.backend.tiny.flux_files import transformer_tensors

    engine, _ = setup
    base = engine.load("tiny-flux").components["transformer"]
    torch.manual_seed(7)
    config = {**dict(base.config), "in_channels": 128, "out_channels": 64}
    control = FluxTransformer2DModel.from_config(config).eval()
    # Forge's checkpoint folder, where it sorts before tiny-flux (ComfyUI's models/unet
    # holds flux1-canny-dev beside flux1-dev the same way).
    path = engine.library.roots[0] / "models" / "Stable-diffusion" / f"{DEPTH}.safetensors"
    save_tensors(transformer_tensors(control), path)
    engine.library.refresh()
    yield engine, control
    path.unlink()
    engine.library.refresh()


def test_a_depth_unit_runs_the_full_control_model_as_diffusers_does(full):
    engine, control = full
    own = engine.load("tiny-flux").components["transformer"]
    depth = unit(type="depth")
    result = engine.run(job(controls=[depth])).images[0]
    comps = engine.load("tiny-flux").components
    assert comps["transformer"] is own  # the model's own transformer is back
    control_image = Image.fromarray(CONTROL)
    expected = flux_lora_reference.run(
        comps, "FluxControlPipeline", None, 1.0, PROMPT, 3, 5, control, control_image=control_image
    )
    assert diff(result.image, expected) <= 1
    assert f"Model: {DEPTH} [" in result.infotext
    caps = engine.capabilities()
    assert caps["control_types"]["flux"]["depth"] == DEPTH
    # It sorts before tiny-flux, yet is not the default model, and runs no mode alone.
    assert caps["default_model"] == "tiny-flux" and caps["model_modes"][DEPTH] == []
    # It has no strength, and is no model to run a job on by itself.
    for bad, words in (
        (job(controls=[unit(type="depth", weight=0.5)]), "no strength"),
        (job(model=DEPTH), "add it to a canny or depth control unit"),
    ):
        with pytest.raises(DreamwireError) as err:
            engine.run(bad)
        assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and words in err.value.message


def test_a_control_model_is_never_the_default_model(full, tmp_path):
    # flux1-depth-dev sorts before flux1-dev; a job naming no model runs the latter.
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny.files import save_tensors
    from dreamwire.backend.tiny.flux_files import transformer_tensors

    engine, _ = full
    checkpoints = tmp_path / "models" / "unet"
    checkpoints.mkdir(parents=True)
    depth = engine.library.roots[0] / "models" / "Stable-diffusion" / f"{DEPTH}.safetensors"
    (checkpoints / depth.name).symlink_to(depth)
    dev = engine.load("tiny-flux").components["transformer"]
    save_tensors(transformer_tensors(dev), checkpoints / "flux1-dev.safetensors")
    library = ModelLibrary([tmp_path])
    assert library.names("checkpoint") == [DEPTH, "flux1-dev"]
    assert library.default_checkpoint().name == "flux1-dev"


def test_admission_counts_the_full_control_models_transformer(full):
    # Its own transformer, loaded beside the model's: counted whole, not as a ControlNet.
    engine, control = full
    engine.load("tiny-flux")
    (plain,) = engine.check_memory(job())
    (with_depth,) = engine.check_memory(job(controls=[unit(type="depth")]))
    params = sum(p.numel() for p in control.parameters())
    assert with_depth.weights - plain.weights == params * 4  # fp32 on the CPU
