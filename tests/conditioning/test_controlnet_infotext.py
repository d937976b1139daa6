"""The A1111 ControlNet extension's "ControlNet N" infotext entries in real engine output:
one per unit, with the model the job actually ran (named or picked), its hash computed
here from the file as the extension does, and read back into the job's units."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from cn_helpers import noise_image

from dreamwire.backend.conditioning import controlnet_files, unit_infotext
from dreamwire.backend.tiny import union as tiny_union
from dreamwire.shared.infotext import format_infotext, parse_infotext
from dreamwire.shared.job import ControlUnit, Job

BASE = dict(prompt="moss", negative="blur", steps=2, cfg=6.0, width=64, height=64, seed=3)
BASE["sampler"] = "Euler"


def extension_hash(path) -> str:
    """sd-webui-controlnet names a model "<stem> [sd_models.model_hash(file)]": A1111's old
    hash, sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits."""
    data = path.read_bytes()
    return hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def _run(engine, **kw):
    text = engine.run(Job(**{**BASE, **kw})).images[0].infotext
    info = parse_infotext(text)
    assert format_infotext(info) == text
    return text, info


def test_one_unit_with_the_model_picked_for_it(engine, cn_dir):
    unit = ControlUnit(type="canny", image=noise_image(1), weight=0.8)  # no model named
    text, info = _run(engine, controls=[unit])
    digest = extension_hash(cn_dir / "control_v11p_sd15_canny.safetensors")
    expected = (
        f"Module: none, Model: control_v11p_sd15_canny [{digest}], Weight: 0.8, "
        "Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, "
        "Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced"
    )
    assert f"ControlNet 0: {json.dumps(expected)}" in text
    # After the fixed fields, where A1111 puts what the extension's process() adds.
    assert info.order[-1] == "ControlNet 0" and info.order[-2] == "Model"
    assert info.controlnets[0].model_hash == digest
    assert info.control_units() == [
        ControlUnit(type="canny", image=None, model="control_v11p_sd15_canny", weight=0.8)
    ]


def test_a_controlnet_and_a_t2i_adapter(engine, cn_dir):
    units = [
        ControlUnit(
            type="canny",
            image=noise_image(2, 48, 64),
            model="control_v11p_sd15_canny",
            weight=1.25,
            start=0.2,
            end=0.8,
            control_mode="prompt",
            preprocessor="canny",
            resize_mode="just_resize",
        ),
        ControlUnit(
            type="depth",
            image=noise_image(3),
            model="t2iadapter_depth_sd14v1",
            control_mode="controlnet",
            resize_mode="resize_and_fill",
        ),
    ]
    text, info = _run(engine, controls=units, prompt="moss <lora:tiny_style:0.5>")
    canny = extension_hash(cn_dir / "control_v11p_sd15_canny.safetensors")
    adapter = extension_hash(cn_dir / "t2iadapter_depth_sd14v1.safetensors")
    assert info.raw["ControlNet 0"] == (
        f"Module: canny, Model: control_v11p_sd15_canny [{canny}], Weight: 1.25, "
        "Resize Mode: Just Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, "
        "Guidance Start: 0.2, Guidance End: 0.8, Pixel Perfect: False, "
        "Control Mode: My prompt is more important"
    )
    assert info.raw["ControlNet 1"] == (
        f"Module: none, Model: t2iadapter_depth_sd14v1 [{adapter}], Weight: 1.0, "
        "Resize Mode: Resize and Fill, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, "
        "Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, "
        "Control Mode: ControlNet is more important"
    )
    # Units in order, before the networks' hashes (the Lora extension writes later).
    assert info.order[-3:] == ["ControlNet 0", "ControlNet 1", "Lora hashes"]
    # Pasted back: the job's units without their images.
    assert info.control_units() == [ControlUnit(**{**vars(u), "image": None}) for u in units]


def test_a_union_model_picked_for_a_type_without_its_own_controlnet(engine, cn_dir):
    unit = ControlUnit(type="canny", image=noise_image(4), preprocessor="invert")
    _, info = _run(engine, model="tiny-sdxl", controls=[unit])
    promax = cn_dir / f"{tiny_union.PROMAX_FILE}.safetensors"
    entry = info.controlnets[0]
    assert entry.model == f"{tiny_union.PROMAX_FILE} [{extension_hash(promax)}]"
    assert (entry.module, entry.processor_res) == ("invert", 512)
    # A Union model's name tells no type: the preprocessor's does not either, so the
    # pasted unit is left out rather than guessed.
    assert info.control_units() == []


def test_a_diffusers_folder_is_named_by_its_folder_and_hashed_by_its_weights(cn_dir):
    folder = cn_dir / tiny_union.FOLDER
    info = controlnet_files.inspect(folder)
    unit = ControlUnit(type="depth", image=None, preprocessor="depth")
    entry = unit_infotext.entry(unit, info)
    weights = extension_hash(folder / "diffusion_pytorch_model.safetensors")
    assert entry.model == f"{tiny_union.FOLDER} [{weights}]"
    assert entry.processor_res == 512  # the extension's default detect resolution


def test_hash_rule_on_a_file_past_one_mebibyte(tmp_path):
    data = np.random.default_rng(0).bytes(0x118000)
    path = tmp_path / "big_canny.safetensors"
    path.write_bytes(data)
    digest = unit_infotext.model_hash(path)
    assert digest == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert digest != hashlib.sha256(data).hexdigest()[:8]
