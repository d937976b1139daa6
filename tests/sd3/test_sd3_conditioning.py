"""SD3 ControlNets and LoRAs through the engine's conditioners.

ControlNets (diffusers SD3ControlNetModel, as Stability's SD3.5 Large canny/depth/blur
load) equal diffusers' SD3 ControlNet pipeline (same components, seed and thread count: bit
for bit); LoRAs in kohya's and diffusers' names patch the weights diffusers' own
load_lora_weights + fuse_lora gives; what SD3 cannot run with them is refused by name."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch

from dreamwire.backend.engine import noise
from dreamwire.backend.families import SPECS
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.support.engines import cpu_engine

CANNY = "sd3.5_large_controlnet_canny"
STABILITY_LAYOUT = "sd3.5_large_controlnet_depth"
BASE = dict(
    model="tiny-sd3",
    prompt="a cat sitting on a red chair",
    negative="blurry",
    sampler="Euler",
    steps=2,
    cfg=3.5,
    width=64,
    height=64,
    seed=5,
)
CONTROL = np.ascontiguousarray(
    np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
)


@pytest.fixture(scope="module")
def root(sd3_root, sd3_parts, tmp_path_factory):
    from dreamwire.backend.tiny import sd3
    from dreamwire.backend.tiny.files import save_tensors
    from dreamwire.backend.tiny.sd3_lora import write_sd3_loras

    root = tmp_path_factory.mktemp("sd3-control")
    checkpoints = root / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny-sd3").symlink_to(sd3_root / "models" / "checkpoints" / "tiny-sd3")
    nets = root / "models" / "controlnet"
    sd3.write_sd3_controlnet(sd3.sd3_controlnet(), nets / f"{CANNY}.safetensors")
    # Stability's own layout (the keys tell it; the sizes do not matter).
    keys = ("pos_embed_input.proj.weight", "transformer_blocks.0.adaLN_modulation.1.bias")
    save_tensors({k: torch.zeros(2, 2) for k in keys}, nets / f"{STABILITY_LAYOUT}.safetensors")
    loras = root / "models" / "loras"
    write_sd3_loras(sd3_parts, loras / "sd3_kohya.safetensors", loras / "sd3_peft.safetensors")
    sd1 = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    save_tensors(
        {
            f"{sd1}.lora_down.weight": torch.zeros(4, 768),
            f"{sd1}.lora_up.weight": torch.zeros(768, 4),
        },
        loras / "sd15_style.safetensors",
    )
    return root


@pytest.fixture(scope="module")
def engine(root):
    return cpu_engine(root)


def unit(model: str = CANNY, **kw) -> ControlUnit:
    return ControlUnit(type="canny", model=model, preprocessor="none", image=CONTROL, **kw)


def job(*units: ControlUnit, **kw) -> Job:
    return Job(**{**BASE, "controls": list(units), **kw})


def test_controlnet_txt2img_equals_diffusers(engine, root):
    from dreamwire.backend.tiny import sd3

    result = engine.run(job(unit()))
    comps = engine.load("tiny-sd3", "").components
    net = sd3.sd3_controlnet()  # the weights the file was written from
    parts = {k: comps[k] for k in SPECS["sd3"].components if k != "scheduler"}
    pipe = diffusers.StableDiffusion3ControlNetPipeline(
        **parts,
        controlnet=net,
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(0)  # the control latents' sample (CONTROL_LATENT_SEED)
    with torch.inference_mode():
        out = pipe(
            prompt=BASE["prompt"],
            negative_prompt="blurry",
            control_image=diffusers.utils.numpy_to_pil(CONTROL / 255.0)[0],
            guidance_scale=3.5,
            num_inference_steps=2,
            generator=noise.generators([5]),
            height=64,
            width=64,
            output_type="np",
        )
    expected = (out.images[0] * 255).round().astype(np.uint8)
    got = result.images[0].image
    assert int(np.abs(got.astype(int) - expected.astype(int)).max()) == 0
    plain = engine.run(job()).images[0].image
    assert int(np.abs(got.astype(int) - plain.astype(int)).max()) > 0
    # Weight 0 runs nothing: the picture is the plain one.
    off = engine.run(job(unit(weight=0.0))).images[0].image
    assert int(np.abs(off.astype(int) - plain.astype(int)).max()) == 0


def test_what_sd3_controlnets_cannot_do_is_refused(engine, init_image):
    for bad, words in (
        (job(unit(model=STABILITY_LAYOUT)), "original layout"),
        (job(unit(), init_image=init_image), "img2img"),
        (job(unit(control_mode="controlnet")), "balanced"),
    ):
        with pytest.raises(DreamwireError) as err:
            engine.run(bad)
        assert words in err.value.message, err.value.message
        assert err.value.code == ErrorCode.MODEL_UNSUPPORTED


def test_a_truncated_sd3_controlnet_file_is_named_as_damaged(root, tmp_path):
    # A tensor the config is read from is gone, its keys still SD3's: a clear
    # MODEL_CORRUPT naming the file and the kind, never a KeyError out of inspect().
    from safetensors.torch import load_file

    from dreamwire.backend.conditioning import controlnet_files
    from dreamwire.backend.tiny.files import save_tensors

    gone = "time_text_embed.text_embedder.linear_1.weight"
    state = load_file(root / "models" / "controlnet" / f"{CANNY}.safetensors")
    assert gone in state
    torn = save_tensors(
        {k: v for k, v in state.items() if k != gone}, tmp_path / "torn_canny.safetensors"
    )
    with pytest.raises(DreamwireError) as err:
        controlnet_files.inspect(torn)
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    for word in ("torn_canny.safetensors", "SD3", gone):
        assert word in err.value.message, err.value.message


def _patched(components: dict, path, multiplier: float) -> dict[str, dict[str, torch.Tensor]]:
    from dreamwire.backend.conditioning import lora

    patch = lora.apply([(lora.read(path), multiplier, multiplier)], components, "tiny-sd3")
    try:
        return {n: {k: v.clone() for k, v in components[n].state_dict().items()} for n in PATCHED}
    finally:
        patch.restore()


PATCHED = ("transformer", "text_encoder", "text_encoder_2")


def test_lora_formats_patch_what_diffusers_fuse_lora_gives(sd3_parts, root):
    import copy

    loras = root / "models" / "loras"
    base = {n: copy.deepcopy(sd3_parts[n].state_dict()) for n in PATCHED}
    kohya = _patched(sd3_parts, loras / "sd3_kohya.safetensors", 0.8)
    peft = _patched(sd3_parts, loras / "sd3_peft.safetensors", 0.8)
    for n in PATCHED:  # restored bit for bit
        assert all(torch.equal(v, base[n][k]) for k, v in sd3_parts[n].state_dict().items())
    pipe = diffusers.StableDiffusion3Pipeline(
        **{k: copy.deepcopy(v) for k, v in sd3_parts.items()},
        tokenizer=None,
        tokenizer_2=None,
        tokenizer_3=None,
        scheduler=None,
    )
    pipe.load_lora_weights(str(loras / "sd3_peft.safetensors"))
    pipe.fuse_lora(components=list(PATCHED), lora_scale=0.8)
    pipe.unload_lora_weights()
    changed = 0
    for n in PATCHED:
        want = getattr(pipe, n).state_dict()
        for k, v in want.items():
            assert torch.allclose(kohya[n][k], v, atol=1e-6), (n, k)
            assert torch.allclose(peft[n][k], v, atol=1e-6), (n, k)
            changed += not torch.equal(v, base[n][k])
    assert changed >= 10  # q, k, v of both attentions, the MLP, to_add_out, both CLIPs


def test_lora_through_the_engine_and_its_lineage(engine):
    plain = engine.run(job()).images[0].image
    styled = engine.run(job(prompt=BASE["prompt"] + " <lora:sd3_kohya:0.8>")).images[0]
    assert int(np.abs(styled.image.astype(int) - plain.astype(int)).max()) > 0
    assert "sd3_kohya" in styled.infotext
    again = engine.run(job()).images[0].image
    assert int(np.abs(again.astype(int) - plain.astype(int)).max()) == 0
    with pytest.raises(DreamwireError) as err:
        engine.run(job(prompt="a cat <lora:sd15_style:1>"))
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "SD1" in err.value.message and "SD3.5" in err.value.message
