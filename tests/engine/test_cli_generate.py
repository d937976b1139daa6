"""`dreamwire generate` end to end, as a real subprocess (forked from the warm interpreter:
tests/support/warm_python.py)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from tests.support import warm_python
from tests.support.threads import thread_env


def dreamwire(*args: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = thread_env(env_extra)
    return warm_python.run(["-m", "dreamwire.backend", *args], env=env, timeout=300, cwd=cwd)


def test_generate_default_tiny_model_writes_pngs(tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "out"
    proc = dreamwire(
        "generate",
        "--prompt",
        "a (red:1.2) barn",
        "--negative",
        "fog",
        "--sampler",
        "DPM++ 2M Karras",
        "--steps",
        "3",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "11",
        "--batch",
        "2",
        "--clip-skip",
        "2",
        "--seamless",
        "--out",
        str(out),
        "--json",
        env_extra={"DREAMWIRE_HOME": str(home), "DREAMWIRE_CONFIG": str(tmp_path / "none.toml")},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (home / "tiny" / "models" / "Stable-diffusion" / "tiny-sd1.safetensors").is_file()
    assert [i["seed"] for i in result["images"]] == [11, 12]
    assert set(result["timings"]) >= {"load", "generate", "total"}
    for item in result["images"]:
        with Image.open(item["path"]) as img:
            assert img.size == (64, 64)
            info = parse_infotext(img.info["parameters"])
        assert info.prompt == "a (red:1.2) barn" and info.negative_prompt == "fog"
        assert info.seed == item["seed"] and info.steps == 3 and info.cfg_scale == 7.0
        assert info.sampler == "DPM++ 2M" and info.schedule_type == "Karras"
        assert info.model == "tiny-sd1" and len(info.model_hash) == 10
        assert info.clip_skip == 2 and info.tiling is True
    assert str(out) in result["images"][0]["path"]


def test_generate_inpaint_from_files(tmp_path, tiny_models):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 8:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    proc = dreamwire(
        "generate",
        "--models",
        str(tiny_models),
        "--prompt",
        "moss",
        "--sampler",
        "Euler",
        "--steps",
        "4",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "5",
        "--init-image",
        str(tmp_path / "init.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--strength",
        "0.8",
        "--vae",
        "tiny-vae",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 image(s) written to" in proc.stdout
    png = next((tmp_path / "out" / "jobs").glob("*/00-5.png"))
    with Image.open(png) as img:
        info = parse_infotext(img.info["parameters"])
    assert info.denoising_strength == 0.8 and info.mask_blur == 4 and info.vae == "tiny-vae"


def test_generate_bad_input_is_a_clear_error(tmp_path, tiny_models):
    proc = dreamwire(
        "generate",
        "--models",
        str(tiny_models),
        "--width",
        "65",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2
    assert "invalid_size" in proc.stderr and "multiple of 8" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = dreamwire(
        "generate",
        "--models",
        str(tiny_models),
        "--sampler",
        "Nope",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2 and "unknown_sampler" in proc.stderr


def test_hires_options_reach_the_job():
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job

    argv = ["generate", "--prompt", "a barn", "--width", "64", "--height", "64"]
    hires = ["--hires-scale", "1.5", "--hires-denoise", "0.4", "--hires-steps", "3"]
    second = ["--hires-prompt", "a barn, detailed", "--hires-negative", "blur"]
    job = build_job(build_parser().parse_args(argv + hires + second))
    assert job.hires is not None
    assert (job.hires.scale, job.hires.denoise, job.hires.steps) == (1.5, 0.4, 3)
    assert (job.hires.prompt, job.hires.negative) == ("a barn, detailed", "blur")
    assert build_job(build_parser().parse_args(argv)).hires is None


def test_hires_resize_options_reach_the_job():
    import pytest

    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job
    from dreamwire.shared.errors import DreamwireError, ErrorCode

    argv = ["generate", "--prompt", "a barn", "--width", "64", "--height", "48"]
    job = build_job(build_parser().parse_args([*argv, "--hires-width", "128"]))
    assert job.hires is not None and (job.hires.width, job.hires.height) == (128, 0)
    assert job.hires.plan(job.width, job.height).size == (128, 96)
    both = ["--hires-width", "128", "--hires-height", "128", "--hires-scale", "3"]
    job = build_job(build_parser().parse_args(argv + both))
    assert job.hires.scale == 3 and job.hires.plan(64, 48).size == (128, 128)
    with pytest.raises(DreamwireError) as err:
        build_job(build_parser().parse_args([*argv, "--hires-height", "100"]))
    assert err.value.code == ErrorCode.INVALID_SIZE


# -- --control and --region ----------------------------------------------------------------
def _control_files(tmp_path):
    """A depth ramp (8-bit and 16-bit), a half-image region mask, and one painted on a
    transparent layer."""
    y, x = np.mgrid[0:64, 0:64]
    ramp = ((x + y) * 2).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "depth.png")
    Image.fromarray(((x + y) * 500).astype(np.uint16)).save(tmp_path / "depth16.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[..., :3] = 255  # white everywhere, but only the bottom half is painted
    layer[32:, :, 3] = 255
    layer[32:, :8, 3] = 128
    Image.fromarray(layer).save(tmp_path / "layer.png")
    return ramp, mask


def _parse(*argv: str):
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job

    base = ["generate", "--prompt", "a field", "--width", "64", "--height", "64"]
    return build_job(build_parser().parse_args([*base, *argv]))


def test_control_and_region_flags_reach_the_job(tmp_path):
    ramp, mask = _control_files(tmp_path)
    Image.fromarray(np.dstack([ramp] * 3)).save(tmp_path / "init.png")
    job = _parse(
        "--init-image",
        str(tmp_path / "init.png"),
        "--control",
        "depth:control_v11f1p_sd15_depth",
        str(tmp_path / "depth.png"),
        "weight=0.8",
        "start=0.1",
        "end=0.9",
        "mode=My prompt is more important",
        "resize=Resize and Fill",
        "--control",
        "tile",  # no image: the unit takes the init image
        "pre=tile_resample",
        "mode=control",
        "resize=0",
        "--control",
        "IP_Adapter",
        "image=" + str(tmp_path / "depth16.png"),
        "mode=ControlNet is more important",
        "--control",
        "normalbae",
        str(tmp_path / "depth.png"),
        "pre=normal_bae",  # the A1111 extension's label for our normalbae
        "res=768",
        "model=control_v11p_sd15_normalbae",
        "--region",
        "a red barn",
        str(tmp_path / "left.png"),
        "0.8",
        "--region",
        "a pond",
        str(tmp_path / "layer.png"),
    )
    depth, tile, ip, normal = job.controls
    assert (depth.type, depth.model, depth.weight, depth.start, depth.end) == (
        "depth",
        "control_v11f1p_sd15_depth",
        0.8,
        0.1,
        0.9,
    )
    assert (depth.control_mode, depth.resize_mode, depth.preprocessor) == (
        "prompt",
        "resize_and_fill",
        "none",
    )
    np.testing.assert_array_equal(depth.image, np.dstack([ramp] * 3))
    assert tile.image is None and tile.model == "" and tile.preprocessor == "tile_resample"
    assert (tile.control_mode, tile.resize_mode) == ("controlnet", "just_resize")
    # A 16-bit grey file keeps its depth: the job's float form, 0..1.
    assert ip.type == "ip-adapter" and ip.control_mode == "controlnet"
    assert ip.image.dtype == np.float32 and ip.image.shape == (64, 64)
    assert ip.image[63, 63] == np.float32(126 * 500 / 65535)
    assert (normal.preprocessor, normal.model) == ("normalbae", "control_v11p_sd15_normalbae")
    assert (normal.processor_res, depth.processor_res) == (768, -1)
    barn, pond = job.regions
    assert (barn.prompt, barn.weight, pond.prompt, pond.weight) == (
        "a red barn",
        0.8,
        "a pond",
        1.0,
    )
    np.testing.assert_array_equal(barn.mask, mask)
    assert barn.mask.dtype == np.uint8
    # Transparent is outside whatever its colour; half-transparent white is half strength.
    assert pond.mask[:32].max() == 0 and pond.mask[40, 20] == 255 and pond.mask[40, 2] == 128


def test_control_and_region_flag_errors(tmp_path):
    import pytest

    from dreamwire.shared.errors import DreamwireError, ErrorCode

    _control_files(tmp_path)
    depth, left = str(tmp_path / "depth.png"), str(tmp_path / "left.png")
    cases = [
        (["--control", "dpeth", depth], ErrorCode.INVALID_JOB, "did you mean 'depth'"),
        (["--control", "depth", depth, "mode=loud"], ErrorCode.INVALID_JOB, "control mode"),
        (["--control", "depth", depth, "resize=zoom"], ErrorCode.INVALID_JOB, "resize mode"),
        (["--control", "depth", depth, "weight=heavy"], ErrorCode.INVALID_JOB, "number"),
        (["--control", "depth", depth, "weight=3"], ErrorCode.INVALID_JOB, "0..2"),
        (["--control", "depth", depth, "res=big"], ErrorCode.INVALID_JOB, "whole number"),
        (["--control", "depth", depth, "res=32"], ErrorCode.INVALID_JOB, "64..2048"),
        (["--control", "depth", depth, "start=0.8", "end=0.2"], ErrorCode.INVALID_JOB, "start"),
        (["--control", "depth", depth, depth], ErrorCode.INVALID_JOB, "second image"),
        (["--control", "depth", str(tmp_path / "no.png")], ErrorCode.INVALID_IMAGE, "no.png"),
        (["--control", "depth"], ErrorCode.INVALID_IMAGE, "init image"),
        (["--region", "a barn"], ErrorCode.INVALID_REGION, "PROMPT MASK"),
        (["--region", "a barn", left, "1.5"], ErrorCode.INVALID_REGION, "0..1"),
        (["--region", "a barn", str(tmp_path / "no.png")], ErrorCode.INVALID_IMAGE, "no.png"),
    ]
    for argv, code, words in cases:
        with pytest.raises(DreamwireError) as err:
            _parse(*argv)
        assert err.value.code == code, argv
        assert words in err.value.message, (argv, err.value.message)


def test_bad_control_type_exits_with_its_code(tmp_path):
    proc = dreamwire("generate", "--control", "dpeth", "x.png", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "[invalid_job]" in proc.stderr and "unknown control type 'dpeth'" in proc.stderr
    assert "depth, normalbae" in proc.stderr  # the known types are listed


def test_generate_with_a_control_unit_and_a_region(tmp_path, tiny_models):
    _control_files(tmp_path)
    proc = dreamwire(
        "generate",
        "--models",
        str(tiny_models),
        "--prompt",
        "a field",
        "--sampler",
        "Euler",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "4",
        "--control",
        "depth",  # no model named: the backend picks one for depth on SD1
        str(tmp_path / "depth.png"),
        "weight=0.8",
        "start=0.25",
        "mode=prompt",
        "--region",
        "a red barn",
        str(tmp_path / "left.png"),
        "0.8",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    with Image.open(result["images"][0]["path"]) as img:
        info = parse_infotext(img.info["parameters"])
    unit = info.controlnets[0]
    assert unit.model_name == "control_v11f1p_sd15_depth" and len(unit.model_hash) == 8
    assert (unit.module, unit.weight, unit.guidance_start, unit.guidance_end) == (
        "none",
        0.8,
        0.25,
        1.0,
    )
    assert unit.control_mode == "My prompt is more important"
    assert info.extras["Regions"] == "1" and info.extras["Region 1"] == "a red barn"
    assert info.extras["Region 1 weight"] == "0.8"
    (resolved,) = result["controlnets"]
    assert resolved["model"] == "control_v11f1p_sd15_depth" and resolved["type"] == "depth"
    assert resolved["model_hash"] == unit.model_hash and resolved["mode"] == "prompt"


def test_the_flags_map_onto_a_job_as_a_host_panel_does():
    """The prompt and sampling flags go through the hosts' mapping (shared.panel_job): the
    same settings give the same fields; the CLI's jobs keep the normal priority."""
    from types import SimpleNamespace

    from dreamwire.shared.panel_job import panel_job

    settings = dict(
        prompt="a barn", negative="blur", model="tiny-sd1", sampler="Euler", steps=3, cfg=5.5
    )
    flags = [w for k, v in settings.items() for w in (f"--{k}", str(v))]
    job = _parse(*flags, "--seed", "42")
    panel = panel_job(SimpleNamespace(**settings, seed=42))
    shared = ("prompt", "negative", "model", "sampler", "steps", "cfg", "seed")
    assert [getattr(job, f) for f in shared] == [getattr(panel, f) for f in shared]
    assert (job.priority, panel.priority) == ("normal", "interactive")


def test_the_mode_flag(tmp_path):
    from dreamwire.shared.job_mode import JobMode

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "in.png")
    assert _parse().mode is JobMode.TXT2IMG  # from the flags, as before --mode
    assert _parse("--init-image", str(tmp_path / "in.png")).mode is JobMode.IMG2IMG
    # An edit job (tests/engine/test_planning.py: refused until a family has an edit model).
    edit = _parse("--mode", "edit", "--init-image", str(tmp_path / "in.png"))
    assert edit.mode is JobMode.EDIT and edit.to_wire()[0]["mode"] == "edit"
    with pytest.raises(DreamwireError) as err:
        _parse("--mode", "inpaint", "--init-image", str(tmp_path / "in.png"))
    assert err.value.code == ErrorCode.INVALID_MASK
