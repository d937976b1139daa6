"""`dreamwire generate` end to end, as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from dreamwire.shared.infotext import parse_infotext


def dreamwire(*args: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "dreamwire.backend", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )


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
