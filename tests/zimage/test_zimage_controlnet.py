"""Z-Image Fun ControlNets (Alibaba PAI's Z-Image-Turbo-Fun-Controlnet-Union, diffusers
ZImageControlNetModel) through the engine's ControlNet conditioner: found in ComfyUI's
models/model_patches, identified, loaded offline and run as diffusers' ZImageControlNetPipeline
runs them (same components, seed and thread count: bit for bit), in img2img too (the
family's img2img pipeline with the net's hints, equal to that pipeline started from
img2img's noised latents); what Z-Image's ControlNets cannot do is refused by name, bad
files get clear codes."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.support.engines import cpu_engine
from tests.support.pipeline_reference import reference_image

MODEL = "z_image_turbo_bf16"
NET = "Z-Image-Turbo-Fun-Controlnet-Union"
PROMPT = "a cat sitting on a red chair"
BASE = dict(model=MODEL, prompt=PROMPT, sampler="Euler", steps=2, cfg=1.0, width=64, height=64)
CONTROL = np.ascontiguousarray(
    np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
)


@pytest.fixture(scope="module")
def root(zimage_tree, tmp_path_factory):
    from dreamwire.backend.tiny import zimage
    from dreamwire.backend.tiny.zimage_lora import write_zimage_loras

    root = tmp_path_factory.mktemp("zimage-control") / "ComfyUI"
    root.mkdir()
    for part in ("diffusion_models", "text_encoders", "vae"):
        (root / "models").mkdir(exist_ok=True)
        (root / "models" / part).symlink_to(zimage_tree.root / "models" / part)
    (root / "comfy").symlink_to(zimage_tree.root / "comfy")
    patches = root / "models" / "model_patches"  # where ComfyUI's ModelPatchLoader reads
    zimage.write_zimage_controlnet(zimage.zimage_controlnet(), patches / f"{NET}.safetensors")
    # A LoRA in ComfyUI's names (its formats: test_zimage_lora.py), for the engine's path.
    loras = root / "models" / "loras"
    write_zimage_loras(
        zimage_tree.parts["transformer"],
        loras / "aitk.safetensors",
        loras / "kohya.safetensors",
        loras / "zimage_style.safetensors",
    )
    return root


@pytest.fixture(scope="module")
def engine(root):
    return cpu_engine(root)


def unit(**kw) -> ControlUnit:
    return ControlUnit(**{"type": "canny", "preprocessor": "none", "image": CONTROL, **kw})


def job(*units: ControlUnit, **kw) -> Job:
    return Job(**{**BASE, "seed": 5, "controls": list(units), **kw})


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_fun_controlnet_txt2img_equals_diffusers(engine, zimage_tree):
    from transformers import AutoTokenizer

    from dreamwire.backend.tiny import zimage

    result = engine.run(job(unit()))
    expected = reference_image(
        engine,
        MODEL,
        "ZImageControlNetPipeline",
        PROMPT,
        # diffusers applies Qwen3's chat template itself: the diffusers folder's tokenizer.
        tokenizer=AutoTokenizer.from_pretrained(
            str(zimage_tree.root / "models" / "diffusers" / "tiny-zimage" / "tokenizer")
        ),
        extra_components={"controlnet": zimage.zimage_controlnet()},  # the file's weights
        control_image=diffusers.utils.numpy_to_pil(CONTROL / 255.0)[0],
        controlnet_conditioning_scale=1.0,
        guidance_scale=0.0,
    )
    got = result.images[0].image
    assert diff(got, expected) == 0
    assert f"Model: {NET}" in result.images[0].infotext
    plain = engine.run(job()).images[0].image
    assert diff(got, plain) > 0
    # The weight scales the hints (diffusers' control_context_scale); 0 runs nothing.
    half = engine.run(job(unit(weight=0.5))).images[0].image
    assert diff(half, got) > 0 and diff(half, plain) > 0
    off = engine.run(job(unit(weight=0.0))).images[0].image
    assert diff(off, plain) == 0


class _Started(Exception):
    """Stops diffusers' img2img pipeline at its first transformer call."""


def _img2img_start(engine, init_image, strength: float, steps: int) -> torch.Tensor:
    """The noised latents diffusers' own ZImageImg2ImgPipeline starts its loop from (its
    first transformer call's input), for the same picture, strength and seed."""
    from PIL import Image

    from dreamwire.backend.engine import noise

    comps = engine.load(MODEL, "").components
    pipe = diffusers.ZImageImg2ImgPipeline(
        **{k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "transformer")},
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    seen = []

    def first(module, args):
        seen.append(torch.stack(args[0]).squeeze(2).float().clone())
        raise _Started

    hook = comps["transformer"].register_forward_pre_hook(first)
    try:
        with torch.inference_mode(), pytest.raises(_Started):
            pipe(
                prompt_embeds=[torch.zeros(1, comps["transformer"].config.cap_feat_dim)],
                image=Image.fromarray(init_image),
                strength=strength,
                num_inference_steps=steps,
                generator=noise.generators([5]),
                height=64,
                width=64,
                guidance_scale=0.0,
            )
    finally:
        hook.remove()
    return seen[0]


def test_fun_controlnet_img2img_equals_diffusers_controlnet_pipeline(
    engine, zimage_tree, init_image
):
    """No diffusers pipeline does ControlNet img2img on Z-Image; expressed through its own
    ZImageControlNetPipeline (started from img2img's noised latents on img2img's part of the
    schedule), the engine's pass gives the same picture bit for bit."""
    from diffusers.pipelines.z_image.pipeline_z_image import get_default_z_image_sigmas
    from transformers import AutoTokenizer

    from dreamwire.backend.tiny import zimage

    steps, strength = 4, 0.5
    result = engine.run(job(unit(), init_image=init_image, strength=strength, steps=steps))
    got = result.images[0].image
    # A1111's schedule (planning.step_schedule): int(0.5 * 4) + 1 = 3 of the 4 steps, which
    # diffusers' img2img runs at strength 3 / 4.
    ran = int(strength * steps) + 1
    start = steps - ran
    expected = reference_image(
        engine,
        MODEL,
        "ZImageControlNetPipeline",
        PROMPT,
        steps=steps - start,
        tokenizer=AutoTokenizer.from_pretrained(
            str(zimage_tree.root / "models" / "diffusers" / "tiny-zimage" / "tokenizer")
        ),
        extra_components={"controlnet": zimage.zimage_controlnet()},
        control_image=diffusers.utils.numpy_to_pil(CONTROL / 255.0)[0],
        controlnet_conditioning_scale=1.0,
        guidance_scale=0.0,
        latents=_img2img_start(engine, init_image, ran / steps, steps),
        sigmas=get_default_z_image_sigmas(steps)[start:],
    )
    assert diff(got, expected) == 0
    plain = engine.run(job(init_image=init_image, strength=strength, steps=steps)).images[0]
    assert diff(got, plain.image) > 0
    assert f"Model: {NET}" in result.images[0].infotext


def test_fun_controlnet_inpaint_repaints_the_mask_only(engine, init_image, mask):
    """Inpaint runs the family's inpaint pipeline with the net's hints: the unit changes what
    is painted in the mask; outside it the picture stays the artist's."""
    kw = dict(init_image=init_image, mask=mask, mask_blur=0, strength=0.9)
    got = engine.run(job(unit(), **kw)).images[0]
    plain = engine.run(job(**kw)).images[0].image
    outside = mask == 0
    assert np.array_equal(got.image[outside], init_image[outside])
    assert diff(got.image[~outside], plain[~outside]) > 0
    assert f"Model: {NET}" in got.infotext


def test_a_2x_net_reads_the_mask_and_masked_picture_as_diffusers_inpaint_pipeline(
    engine, root, init_image, mask, monkeypatch
):
    """Fun 2.x's 17 inpaint channels (kept area, masked picture's latents) hold what
    diffusers' ZImageControlNetInpaintPipeline puts there, bit for bit."""
    from PIL import Image

    from dreamwire.backend.tiny import zimage

    seen: list[torch.Tensor] = []
    forward = diffusers.ZImageControlNetModel.forward

    def recording(self, x, t, cap_feats, control_context, *args, **kw):
        seen.append(control_context.clone())
        return forward(self, x, t, cap_feats, control_context, *args, **kw)

    monkeypatch.setattr(diffusers.ZImageControlNetModel, "forward", recording)
    net = zimage.zimage_controlnet(control_in_dim=33)
    path = zimage.write_zimage_controlnet(
        net, root / "models" / "model_patches" / "fun-2.safetensors"
    )
    engine.library.refresh()
    try:
        kw = dict(init_image=init_image, mask=mask, mask_blur=0, strength=0.9)
        got = engine.run(job(unit(model="fun-2"), **kw)).images[0]
    finally:
        path.unlink()
        engine.library.refresh()
    reference_image(
        engine,
        MODEL,
        "ZImageControlNetInpaintPipeline",
        PROMPT,
        steps=1,
        extra_components={"controlnet": net},
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        control_image=diffusers.utils.numpy_to_pil(CONTROL / 255.0)[0],
        guidance_scale=0.0,
    )
    ours, theirs = seen[0], seen[-1]
    assert ours.shape == theirs.shape == (1, 33, 1, 8, 8)
    assert torch.equal(ours, theirs)
    assert ours[:, 16].min() == 0 and ours[:, 16].max() == 1  # the kept area is not all
    outside = mask == 0
    assert np.array_equal(got.image[outside], init_image[outside])


def test_a_lora_through_the_engine_is_undone_after_the_job(engine):
    plain = engine.run(job()).images[0].image
    styled = engine.run(job(prompt=PROMPT + " <lora:zimage_style:0.8>")).images[0]
    assert diff(styled.image, plain) > 0
    assert "zimage_style" in styled.infotext
    assert diff(engine.run(job()).images[0].image, plain) == 0


def test_what_z_image_controlnets_cannot_do_is_refused(engine, init_image):
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    unsupported, not_found = ErrorCode.MODEL_UNSUPPORTED, ErrorCode.CONTROLNET_NOT_FOUND
    for bad, code, words in (
        (job(unit(), unit(type="depth")), unsupported, "one ControlNet unit"),
        (job(unit(), unit(), init_image=init_image, mask=mask), unsupported, "units 0 and 1"),
        (job(unit(type="tile", model=NET)), unsupported, "no tile mode"),
        (job(unit(type="tile")), not_found, "no tile ControlNet"),
        (job(unit(control_mode="controlnet")), unsupported, "balanced"),
    ):
        with pytest.raises(DreamwireError) as err:
            engine.run(bad)
        assert err.value.code == code, err.value.message
        assert words in err.value.message, err.value.message


def test_the_welcome_offers_the_fun_union_s_types(engine):
    from dreamwire.backend.conditioning.capabilities import control_capabilities
    from dreamwire.backend.conditioning.unit_resolution import pick

    caps = control_capabilities(engine.library, pick)
    served = caps["control_types"]["zimage"]
    assert "canny" in served, caps["control_missing"]["zimage"]
    assert all(served[t] == NET for t in ("canny", "softedge", "depth", "openpose", "mlsd"))
    assert "tile" not in served and "tile" in caps["control_missing"]["zimage"]


def _real_shapes(**config) -> dict[str, tuple[int, ...]]:
    """The shapes of a Fun ControlNet at Z-Image Turbo's real widths (meta device)."""
    from diffusers import ZImageControlNetModel

    with torch.device("meta"):
        net = ZImageControlNetModel(**config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    ("places", "in_dim", "mode", "before_zero"),
    [
        (list(range(0, 30, 5)), 16, None, None),  # 1.0: 6 control layers, latents only
        (list(range(0, 30, 2)), 33, "control_layers", True),  # 2.0: untrained refiners
        (list(range(0, 30, 2)), 33, "control_noise_refiner", False),  # 2.1
    ],
)
def test_fun_controlnet_configs_come_from_the_shapes(places, in_dim, mode, before_zero):
    import json

    from dreamwire import catalog
    from dreamwire.backend.library import zimage_controlnet as headers

    base = json.loads(
        (catalog.config_dir("zimage-turbo") / "transformer" / "config.json").read_text()
    )
    config = dict(
        control_layers_places=places,
        control_refiner_layers_places=[0, 1],
        control_in_dim=in_dim,
        # 2.0's files hold refiner blocks diffusers drops; their shapes are 2.1's.
        add_control_noise_refiner="control_noise_refiner" if mode else None,
    )
    shapes = _real_shapes(**config)
    assert headers.layout(set(shapes)) == "zimage_fun"
    assert headers.refiner_mode(shapes, before_zero) == mode
    derived = headers.config_from_shapes(shapes, base, mode)
    expected = {**config, "add_control_noise_refiner": mode}
    assert {k: derived[k] for k in expected} == expected
    assert (derived["dim"], derived["n_heads"], derived["qk_norm"]) == (3840, 30, True)


def test_bad_fun_controlnet_files_get_clear_codes(engine, root, tmp_path):
    from dreamwire.backend.conditioning import controlnet_files
    from dreamwire.backend.tiny import zimage
    from dreamwire.backend.tiny.files import save_tensors, state_of

    transformer = engine.load(MODEL, "").components["transformer"].config
    good = state_of(zimage.zimage_controlnet())
    # A control layer's weights missing: named as a damaged file, not a shape error.
    torn = {k: v for k, v in good.items() if k != "control_layers.1.attention.to_q.weight"}
    info = controlnet_files.inspect(save_tensors(torn, tmp_path / "torn.safetensors"))
    with pytest.raises(DreamwireError) as err:
        controlnet_files.load(info, dict(transformer), torch.float32, "cpu")
    assert err.value.code == ErrorCode.MODEL_CORRUPT and "missing" in err.value.message
    # Cut short: the header promises more than the file holds.
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((root / "models" / "model_patches" / f"{NET}.safetensors").read_bytes()[:4000])
    with pytest.raises(DreamwireError) as err:
        controlnet_files.inspect(cut)
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    # Another width: refused before loading, naming both.
    wide = {k: v for k, v in good.items()}
    wide["control_all_x_embedder.2-1.weight"] = torch.zeros(96, 64)
    info = controlnet_files.inspect(save_tensors(wide, tmp_path / "wide.safetensors"))
    with pytest.raises(DreamwireError) as err:
        controlnet_files.check_compatible(info, dict(transformer), MODEL, "zimage")
    assert (
        err.value.code == ErrorCode.MODEL_MISMATCH and "hidden width 96 vs 64" in err.value.message
    )


def test_a_diffusers_folder_is_identified_and_loaded(engine, tmp_path):
    from dreamwire.backend.conditioning import controlnet_files
    from dreamwire.backend.tiny import zimage

    net = zimage.zimage_controlnet()
    folder = tmp_path / "Z-Image-Turbo-Fun-Controlnet-Union-diffusers"
    net.save_pretrained(folder)
    info = controlnet_files.inspect(folder)
    assert (info.layout, info.family, info.type) == ("zimage_folder", "Z-Image", None)
    transformer = dict(engine.load(MODEL, "").components["transformer"].config)
    controlnet_files.check_compatible(info, transformer, MODEL, "zimage")
    loaded = controlnet_files.load(info, transformer, torch.float32, "cpu")
    want = net.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())
