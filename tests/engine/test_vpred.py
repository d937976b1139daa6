"""SDXL v-prediction (NoobAI-XL v-pred and the like): found by the single file's `v_pred` /
`ztsnr` marker keys or a diffusers folder's scheduler config, run with v-prediction, A1111's
zero-terminal-SNR schedule and CFG rescale, and written into the infotext as A1111 and its
CFG rescale extension write it. The engine equals diffusers' own SDXL pipeline on the same
components and scheduler config, bit for bit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from reference import maxdiff, reference_pipe, run

from dreamwire.backend.engine import library_adapter
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import Job

VPRED, V_ONLY, FOLDER = "tiny-sdxl-vpred", "tiny-sdxl-v", "tiny-sdxl-vpred-diffusers"
JOB = dict(prompt="a lantern", negative="blur", steps=2, cfg=5.0, width=64, height=64, seed=3)
PIPE = dict(prompt="a lantern", negative_prompt="blur", num_inference_steps=2, guidance_scale=5.0)
# A1111's rescale_zero_terminal_snr_abar and Forge/ComfyUI put this where alphas_cumprod is 0.
A1111_LAST = 4.8973451890853435e-08


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny import build

    root = tmp_path_factory.mktemp("vpred-models")
    checkpoints = root / "models" / "Stable-diffusion"
    parts = build.sdxl_components()
    build.write_sdxl_vpred_checkpoint(parts, checkpoints / f"{VPRED}.safetensors")
    build.write_sdxl_vpred_checkpoint(parts, checkpoints / f"{V_ONLY}.safetensors", ztsnr=False)
    folder = build.write_diffusers_folder(parts, checkpoints / FOLDER, arch="tiny-sdxl")
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config |= {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True}
    config_path.write_text(json.dumps(config))
    return Engine(ModelLibrary([root]), device="cpu", extensions=[], cache_size=3)


def a1111_alphas_cumprod(config: dict) -> torch.Tensor:
    """A1111's rescale_zero_terminal_snr_abar over SDXL's scaled-linear betas, restated."""
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, 1000) ** 2
    sqrt_ac = torch.cumprod(1 - betas.double(), 0).sqrt()
    first, last = sqrt_ac[0].clone(), sqrt_ac[-1].clone()
    ac = ((sqrt_ac - last) * first / (first - last)) ** 2
    ac[-1] = A1111_LAST
    return ac


def test_found_and_listed_as_v_prediction(engine):
    listed = engine.capabilities()
    assert listed["model_prediction"] == {
        VPRED: "v_prediction, zero terminal SNR",
        V_ONLY: "v_prediction",
        FOLDER: "v_prediction, zero terminal SNR",
    }
    assert {listed["model_families"][n] for n in (VPRED, V_ONLY, FOLDER)} == {"sdxl"}
    assert library_adapter.predictions(engine.library) == listed["model_prediction"]


def test_loaded_scheduler_and_a1111s_zero_terminal_snr(engine):
    from dreamwire.backend.samplers import make_scheduler

    for name, ztsnr in ((VPRED, True), (V_ONLY, False), (FOLDER, True)):
        config = engine.load(name).components["scheduler"].config
        assert config.prediction_type == "v_prediction", name
        assert bool(config.get("rescale_betas_zero_snr")) is ztsnr, name
    config = engine.load(VPRED).components["scheduler"].config
    for sampler in ("Euler", "DPM++ 2M", "Heun", "DPM++ SDE"):  # with or without the flag
        sched = make_scheduler(sampler, config)
        assert torch.allclose(sched.alphas_cumprod.double(), a1111_alphas_cumprod(config))
    sched = make_scheduler("Euler", config)
    sched.set_timesteps(2)
    # A1111's first sigma, where diffusers' own rescale would start at 4096 (2**-24).
    assert float(sched.sigmas[0]) == pytest.approx(math.sqrt((1 - A1111_LAST) / A1111_LAST))
    assert float(sched.sigmas[0]) > 4500


def test_engine_equals_diffusers_bit_for_bit_and_the_prediction_type_matters(engine):
    out = engine.run(Job(**JOB, model=VPRED, sampler="Euler", cfg_rescale=0.7)).images[0]
    pipe = reference_pipe(engine, "StableDiffusionXLPipeline", "Euler", model=VPRED)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    ref = run(pipe, 3, **PIPE, guidance_rescale=0.7, width=64, height=64)[0]
    assert maxdiff(out.image, ref) == 0
    assert ref.std() > 5  # not a blank image

    # The same run read as an epsilon model, or without CFG rescale, is another picture.
    eps = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type="epsilon")
    pipe.scheduler = eps
    assert maxdiff(run(pipe, 3, **PIPE, guidance_rescale=0.7, width=64, height=64)[0], ref) > 10
    plain = engine.run(Job(**JOB, model=VPRED, sampler="Euler")).images[0]
    assert maxdiff(plain.image, out.image) > 0

    info = parse_infotext(out.infotext)
    assert info.extras["CFG Rescale"] == "0.7"  # the A1111 CFG rescale extension's key
    assert info.extras["Noise Schedule"] == "Zero Terminal SNR"  # A1111's noise schedule
    assert "CFG Rescale" not in parse_infotext(plain.infotext).extras
    v_only = engine.run(Job(**JOB, model=V_ONLY, sampler="Euler")).images[0]
    assert "Noise Schedule" not in parse_infotext(v_only.infotext).extras


def test_cfg_rescale_travels_only_when_on_and_is_range_checked():
    from dreamwire.shared.errors import DreamwireError, ErrorCode
    from dreamwire.shared.events import Welcome

    body, _ = Job(prompt="x").to_wire()
    assert "cfg_rescale" not in body  # off: the body an older backend knows
    body, arrays = Job(prompt="x", cfg_rescale=0.7).to_wire()
    assert Job.from_wire(body, arrays).cfg_rescale == 0.7
    with pytest.raises(DreamwireError) as err:
        Job(prompt="x", cfg_rescale=1.5).validate()
    assert err.value.code == ErrorCode.INVALID_JOB and "CFG rescale" in err.value.message
    welcome = Welcome.from_body({"model_prediction": {VPRED: "v_prediction", "bad": 3}})
    assert welcome.model_prediction == {VPRED: "v_prediction"}


def test_rescaled_cond_gives_diffusers_rescale_through_the_pipelines_own_guidance_step():
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    from dreamwire.backend.engine.cfg_rescale import rescaled_cond

    torch.manual_seed(0)
    out = (
        torch.randn(4, 4, 8, 8, dtype=torch.float64)
        * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(4, 1, 1, 1).double()
    )
    uncond, cond = out[:2], out[2:]
    new = rescaled_cond(out, images=2, cfg_scale=6.0, phi=0.7)
    assert torch.equal(new[:2], uncond)  # the unconditional half is left alone
    guided = uncond + 6.0 * (new[2:] - uncond)  # what the pipeline then computes
    want = rescale_noise_cfg(uncond + 6.0 * (cond - uncond), cond, guidance_rescale=0.7)
    assert torch.allclose(guided, want, atol=1e-12)
    assert not torch.allclose(want, uncond + 6.0 * (cond - uncond), atol=1e-3)


def test_img2img_rescale_by_the_hook_equals_the_pipelines_own_and_leaves_the_unet_bare(
    engine, monkeypatch
):
    """SDXL img2img has diffusers' guidance_rescale: the hook the engine uses where a
    pipeline has none (SD img2img/inpaint, every ControlNet pipeline) gives the same
    picture within rounding (the two compute the same formula in another order)."""
    from dreamwire.backend.engine import cfg_rescale

    picture = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    # A strong CFG, where rescale shows on the tiny model.
    settings = dict(JOB, steps=3, cfg=12.0)
    job = dict(**settings, model=VPRED, sampler="Euler", init_image=picture, strength=0.9)
    native = engine.run(Job(**job, cfg_rescale=0.7)).images[0].image
    plain = engine.run(Job(**job)).images[0].image
    monkeypatch.setattr(cfg_rescale, "native", lambda pipe: False)
    hooked = engine.run(Job(**job, cfg_rescale=0.7)).images[0]
    assert maxdiff(hooked.image, native) <= 1
    assert maxdiff(hooked.image, plain) > 6
    assert parse_infotext(hooked.infotext).extras["CFG Rescale"] == "0.7"
    assert not engine.load(VPRED).components["unet"]._forward_hooks
