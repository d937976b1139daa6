"""`dreamwire generate` on Flux models, in-process: flags left out take the family's
defaults (Forge's Flux preset), and an edit job runs on a Kontext model."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from dreamwire.backend.cli import main as cli_main
from dreamwire.shared.infotext import parse_infotext


def _run(capsys, root, out, *args: str) -> dict:
    argv = ["generate", "--models", str(root), "--out", str(out), "--json", "--device", "cpu"]
    argv += ["--width", "64", "--height", "64", "--steps", "2", "--seed", "3", *args]
    assert cli_main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_flux_takes_its_family_defaults_and_distilled_cfg(flux_root, tmp_path, capsys):
    record = _run(capsys, flux_root, tmp_path, "--model", "tiny-flux", "--prompt", "a cat")
    info = parse_infotext(record["images"][0]["infotext"])
    # No --sampler/--cfg: Euler and CFG 1 (an SD sampler would have been refused).
    assert (info.sampler, info.cfg_scale) == ("Euler", 1.0)
    assert info.extras["Distilled CFG Scale"] == "3.5"
    record = _run(
        capsys,
        flux_root,
        tmp_path,
        "--model",
        "tiny-flux",
        "--prompt",
        "a cat",
        "--distilled-cfg",
        "5",
    )
    assert parse_infotext(record["images"][0]["infotext"]).extras["Distilled CFG Scale"] == "5"


def test_edit_mode_on_a_kontext_model(flux_root, tmp_path, capsys, init_image):
    picture = tmp_path / "picture.png"
    Image.fromarray(init_image).save(picture)
    record = _run(
        capsys,
        flux_root,
        tmp_path / "out",
        "--model",
        "tiny-flux-kontext",
        "--mode",
        "edit",
        "--init-image",
        str(picture),
        "--prompt",
        "make the cat red",
    )
    image = np.asarray(Image.open(record["images"][0]["path"]))
    assert image.shape == (64, 64, 3)
    assert "Distilled CFG Scale: 2.5" in record["images"][0]["infotext"]


def test_flags_left_out_take_the_models_own_defaults(flux_root):
    # A model with defaults of its own (Kontext's Distilled CFG; schnell's steps) is read
    # from the library's scan, before anything loads.
    import argparse

    from dreamwire.backend.cli.generate import model_family

    def defaults(model):
        args = argparse.Namespace(server=None, models=[flux_root], model=model)
        return model_family(args).defaults

    assert defaults("tiny-flux-kontext").distilled_cfg == 2.5
    assert defaults("tiny-flux-fill").distilled_cfg == 30.0
    assert defaults("tiny-flux").distilled_cfg == 3.5
