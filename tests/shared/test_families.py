"""Model families as data (shared.families): one entry per architecture, the keys the
backend and its catalog use, labels and name guesses the hosts rely on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dreamwire import catalog
from dreamwire.shared import families


def test_every_catalog_family_has_an_entry():
    # The backend reports a checkpoint's family from the catalog's architecture entry; a
    # family the hosts have no entry for would fall back to SD1.x sizes and labels.
    keys = {catalog.arch_info(arch)["family"] for arch in catalog.archs()}
    assert keys <= set(families.FAMILIES), keys - set(families.FAMILIES)


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("sd1", "SD1.x"),
        ("sd2", "SD2.x"),
        ("sdxl", "SDXL"),
        ("flux", "Flux.1"),
        ("qwen-image", "Qwen-Image"),
    ],
)
def test_labels(key, label):
    assert families.label(key) == label
    assert families.family(key).key == key


def test_unknown_keys():
    assert families.label("auraflow") == "auraflow"  # shown as the backend wrote it
    assert families.family("auraflow") is families.DEFAULT
    assert families.family(None) is families.DEFAULT


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("sd_xl_base_1.0", "sdxl"),
        ("flux1-dev-Q4_K_S", "flux"),
        ("qwen_image_edit_2509_fp8_e4m3fn", "qwen-image"),
        ("ponyDiffusionV6XL", "sdxl"),
        ("sdxl-v2-test", "sdxl"),  # "xl" wins over SD2's "v2-"
        ("v2-1_768-ema-pruned", "sd2"),
        ("dreamshaper_8", "sd1"),
        ("", "sd1"),
    ],
)
def test_guess_from_name(name, key):
    assert families.guess_from_name(name) == key


def test_native_sizes_grow_with_the_family():
    sizes = [families.family(k).resolution for k in ("sd1", "sd2", "sdxl")]
    assert [r.native for r in sizes] == [512, 768, 1024]
    for r in sizes:
        assert r.native <= r.max_side and r.native**2 <= r.max_pixels * 1.5


def test_flux_defaults_follow_forge():
    # A host switching to a Flux model takes these instead of SD's 7.0 CFG and DPM++.
    flux, sd = families.family("flux").defaults, families.family("sd1").defaults
    assert (flux.sampler, flux.cfg, flux.distilled_cfg) == ("Euler", 1.0, 3.5)
    assert sd.distilled_cfg is None and sd.cfg == 7.0


def test_welcome_carries_family_descriptions_a_host_can_use():
    # A backend's welcome describes each family it runs; a host reads a family it has no
    # entry for (label, sizes, defaults) and what it can do, and ignores a damaged entry.
    from dreamwire.backend.families import family_infos
    from dreamwire.shared.events import Welcome

    body = {
        "protocol": 1,
        "model_families": {"flux1-dev": "flux", "dream": "sd1"},
        "families": {**family_infos(), "broken": {"label": 3}},
    }
    welcome = Welcome.from_body(body)
    flux = welcome.family("flux1-dev")
    # Name hints are a host-side guess for backends that say nothing; they do not travel.
    assert flux is not None and flux.family == replace(families.family("flux"), name_hints=())
    # Edit is Kontext's (a variant); the family lists it, model_modes says which model.
    assert (
        flux.modes == ("txt2img", "img2img", "inpaint", "edit") and "seamless" not in flux.supports
    )
    assert "seamless" in welcome.family("dream").supports
    assert "broken" not in welcome.families and welcome.family("unknown") is None
