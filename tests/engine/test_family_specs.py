"""The backend's family specs (backend/families): one per shared family, each naming real
diffusers pipelines whose constructors take exactly the components the spec builds from."""

from __future__ import annotations

import inspect

import diffusers
import pytest

from dreamwire import catalog
from dreamwire.backend.families import SPECS, spec_for
from dreamwire.backend.families.spec import MODES
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError, ErrorCode


def test_every_shared_family_has_a_spec():
    assert set(SPECS) == set(families.FAMILIES)
    for key, spec in SPECS.items():
        assert spec.family is families.FAMILIES[key]


def test_variant_pipelines_take_the_spec_components():
    for spec in SPECS.values():
        for variant in map(spec.variant, spec.variants):
            for mode in (m for m in MODES if variant.pipelines.has(m)):
                cls = getattr(diffusers, getattr(variant.pipelines, mode))
                params = inspect.signature(cls.__init__).parameters
                assert set(spec.components) <= set(params), (cls.__name__, spec.components)
                takes_negative = (
                    "negative_prompt_embeds" in inspect.signature(cls.__call__).parameters
                )
                assert takes_negative == variant.real_cfg, cls.__name__


@pytest.mark.parametrize("key", sorted(SPECS))
@pytest.mark.parametrize("controlnet", [False, True])
def test_pipelines_take_the_spec_components(key, controlnet):
    spec = SPECS[key]
    table = spec.controlnet_pipelines if controlnet else spec.pipelines
    for mode in (m for m in MODES if table.has(m)):
        cls = spec.pipeline_class(mode, controlnet=controlnet)
        params = inspect.signature(cls.__init__).parameters
        assert set(spec.components) <= set(params), (cls.__name__, spec.components)
        assert ("safety_checker" in params) == spec.safety_checker_slot, cls.__name__
        assert ("text_encoder_2" in params) == spec.pooled_text, cls.__name__


def test_catalog_pipelines_agree_with_the_specs():
    # The catalog names the pipeline a single file loads as; it must be one its family's
    # spec runs, or the engine would rebuild a checkpoint into a pipeline of another kind.
    for arch in catalog.archs():
        info = catalog.arch_info(arch)
        spec = spec_for(catalog.family_of(arch))
        table = spec.variant(catalog.variant_of(arch)).pipelines
        names = {getattr(table, m) for m in MODES if table.has(m)}
        assert info["pipeline"] in names, (arch, info["pipeline"])
        assert hasattr(diffusers, info["pipeline"])


def test_family_of_architectures():
    assert catalog.family_of("sd2-v") == "sd2"
    assert catalog.family_of("tiny-sdxl") == "sdxl"
    assert catalog.family_of("sdxl-refiner") == "sdxl"  # not in the catalog: by its prefix
    assert catalog.family_of(None) == "sd1"
    assert spec_for("not-a-family") is SPECS["sd1"]


def test_unknown_mode_is_a_stable_error():
    with pytest.raises(DreamwireError) as err:
        SPECS["sdxl"].pipeline_class("outpaint")
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    with pytest.raises(DreamwireError) as err:  # no edit model for SDXL
        SPECS["sdxl"].pipeline_class("edit")
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED


@pytest.mark.parametrize("key", sorted(SPECS))
def test_denoiser_and_previews_fit_the_catalog_configs(key):
    # The denoiser component is a folder of every catalog config of the family, and the
    # preview factors have one row per latent channel of its VAE.
    import json

    spec = SPECS[key]
    archs = [a for a in catalog.archs() if catalog.family_of(a) == key]
    assert archs
    for arch in archs:
        folder = catalog.config_dir(arch)
        assert (folder / spec.denoiser / "config.json").is_file(), arch
        vae = json.loads((folder / "vae" / "config.json").read_text())
        # The Qwen-Image (Wan) VAE names its latent channels z_dim.
        assert len(spec.latent_rgb) == vae.get("latent_channels", vae.get("z_dim")), arch


@pytest.mark.parametrize("key", sorted(SPECS))
def test_text_width_and_single_file_text_fit_the_catalog_configs(key):
    # The width an add-on's shapes are matched against is every real architecture's UNet
    # cross-attention width, and the single-file text encoders are the config's components.
    import json

    spec = SPECS[key]
    real = [a for a in catalog.archs() if catalog.family_of(a) == key and "tiny" not in a]
    for arch in real:
        folder = catalog.config_dir(arch)
        unet = folder / "unet" / "config.json"
        width = json.loads(unet.read_text())["cross_attention_dim"] if unet.is_file() else None
        assert spec.text_width == width, arch
        for text in spec.single_file_text:
            assert (folder / text.component / "config.json").is_file(), (arch, text)
    assert [t.component for t in spec.single_file_text] == [
        c for c in spec.model_parts if c.startswith("text_encoder")
    ] or not spec.single_file_text
