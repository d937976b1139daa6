"""Flux Redux as a Flux model's reference control: a reference unit ("ip-adapter") on a
Flux.1 job runs FluxPriorReduxPipeline's computation on the unit's image and appends its
image tokens to T5's prompt embeddings. Pinned against diffusers' FluxPriorReduxPipeline +
FluxPipeline(prompt_embeds=..., pooled_prompt_embeds=...) on the tiny models; the weight
multiplies the image tokens (ComfyUI's StyleModelApply "multiply")."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from tests.flux.test_flux_engine import diff, reference
from tests.support.engines import cpu_engine

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-flux", prompt=PROMPT, sampler="Euler", steps=4, cfg=1.0, width=64, height=64, seed=5
)
NAMES = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)


def reference_job(*units: ControlUnit, **kw) -> Job:
    return Job(**{**BASE, **kw}, controls=list(units))


def unit(seed: int = 1, **kw) -> ControlUnit:
    return ControlUnit(type="ip-adapter", image=picture(seed), **kw)


def _root(tmp_path_factory, flux_root, siglip: bool):
    from dreamwire.backend.tiny.redux import write_redux_files

    root = tmp_path_factory.mktemp("redux-models")
    models = root / "models"
    encoder, _ = write_redux_files(models)
    if not siglip:
        encoder.unlink()
    # The tiny Flux checkpoints, shared with the other Flux tests.
    (models / "Stable-diffusion").symlink_to(flux_root / "models" / "Stable-diffusion")
    return root


def _engine(root):
    return cpu_engine(root)


@pytest.fixture(scope="module")
def redux_engine(tmp_path_factory, flux_root):
    return _engine(_root(tmp_path_factory, flux_root, siglip=True))


def prior_embeds(engine, images: list[np.ndarray], weights: list[float]):
    """diffusers' FluxPriorReduxPipeline over the tiny models (its text encoders encode the
    prompt, as they do when given); each further unit's tokens appended, weighted."""
    from transformers import SiglipImageProcessor

    from dreamwire.backend.tiny.redux import redux, siglip

    comps = engine.load("tiny-flux", "").components
    encoder = siglip()
    prior = diffusers.FluxPriorReduxPipeline(
        image_encoder=encoder,
        feature_extractor=SiglipImageProcessor(
            size={"height": 32, "width": 32}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3
        ),
        image_embedder=redux(),
        **{k: comps[k] for k in NAMES if k != "vae" and k != "transformer"},
    )
    text_len = None
    tokens = []
    pooled = None
    with torch.inference_mode():
        for image, weight in zip(images, weights, strict=True):
            out = prior(image=Image.fromarray(image), prompt=PROMPT)
            text_len = out.prompt_embeds.shape[1] - 16  # 16 image tokens: (32 / 8) ** 2
            text, image_tokens = out.prompt_embeds[:, :text_len], out.prompt_embeds[:, text_len:]
            tokens.append(image_tokens if weight == 1.0 else image_tokens * weight)
            pooled = out.pooled_prompt_embeds
    return torch.cat([text, *tokens], dim=1), pooled


def flux_reference(engine, prompt_embeds, pooled) -> np.ndarray:
    return reference(
        engine,
        "FluxPipeline",
        prompt_override=None,
        prompt_embeds=prompt_embeds,
        pooled_prompt_embeds=pooled,
        guidance_scale=3.5,
        height=64,
        width=64,
    )


def test_reference_unit_equals_diffusers_prior_redux_then_flux(redux_engine):
    result = redux_engine.run(reference_job(unit()))
    expected = flux_reference(redux_engine, *prior_embeds(redux_engine, [picture(1)], [1.0]))
    assert diff(result.images[0].image, expected) == 0
    plain = redux_engine.run(Job(**BASE)).images[0].image
    assert diff(result.images[0].image, plain) > 0  # the reference changed the picture
    assert "ControlNet 0: " in result.images[0].infotext
    assert "tiny-flux1-redux" in result.images[0].infotext


def test_weight_multiplies_the_image_tokens_and_units_concatenate(redux_engine):
    result = redux_engine.run(reference_job(unit(weight=0.5), unit(seed=2, weight=1.0)))
    embeds = prior_embeds(redux_engine, [picture(1), picture(2)], [0.5, 1.0])
    assert diff(result.images[0].image, flux_reference(redux_engine, *embeds)) == 0
    full = redux_engine.run(reference_job(unit(), unit(seed=2))).images[0].image
    assert diff(result.images[0].image, full) > 0


def test_a_unit_outside_its_window_is_left_out(redux_engine):
    # start 1.0: active only once every step has run, so no transformer call sees it.
    late = redux_engine.run(reference_job(unit(start=1.0, end=1.0))).images[0].image
    assert diff(late, redux_engine.run(Job(**BASE)).images[0].image) == 0
    # Active over the first half only: neither the plain picture nor the full reference.
    half = redux_engine.run(reference_job(unit(end=0.5))).images[0].image
    full = redux_engine.run(reference_job(unit())).images[0].image
    assert diff(half, full) > 0 and diff(half, late) > 0


def test_missing_siglip_is_one_clear_error_naming_the_file(tmp_path_factory, flux_root):
    engine = _engine(_root(tmp_path_factory, flux_root, siglip=False))
    with pytest.raises(DreamwireError) as err:
        engine.run(reference_job(unit()))
    assert err.value.code is ErrorCode.MODEL_PART_MISSING
    assert "sigclip_vision_patch14_384.safetensors" in err.value.message
    assert "models/clip_vision" in err.value.message


def test_style_units_on_flux_are_refused_clearly(redux_engine):
    style = ControlUnit(type="ip-adapter-style", image=picture(1))
    with pytest.raises(DreamwireError) as err:
        redux_engine.run(reference_job(style))
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and "Redux" in err.value.message


def test_library_lists_redux_and_siglip_apart_from_clip_vision(tmp_path):
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.library.safetensors_header import Header
    from dreamwire.backend.library.vision_identify import clip_vision_arch, style_model_arch
    from dreamwire.backend.tiny.files import save_tensors, state_of
    from dreamwire.backend.tiny.ip_adapter import encoder
    from dreamwire.backend.tiny.redux import write_redux_files

    models = tmp_path / "models"
    write_redux_files(models)
    save_tensors(
        state_of(encoder("tiny-clip-vit-h")), models / "clip_vision" / "clip-h.safetensors"
    )
    lib = ModelLibrary([tmp_path])
    archs = {e.name: e.arch for e in lib.entries("clip_vision") + lib.entries("style_model")}
    assert archs == {
        "tiny-sigclip_vision": "tiny-siglip",
        "clip-h": "clip-vision-64",
        "tiny-flux1-redux": "tiny-flux-redux",
    }

    def header(shapes):
        return Header({k: {"shape": list(v)} for k, v in shapes.items()}, {})

    # The released files' shapes (sigclip_vision_patch14_384, flux1-redux-dev).
    siglip = header(
        {
            "vision_model.embeddings.patch_embedding.weight": (1152, 3, 14, 14),
            "vision_model.embeddings.position_embedding.weight": (729, 1152),
        }
    )
    assert clip_vision_arch(siglip) == "siglip-384"
    redux = header({"redux_up.weight": (12288, 1152), "redux_down.weight": (4096, 12288)})
    assert style_model_arch(redux) == "flux-redux"
    assert style_model_arch(header({"style_embedding": (1, 8, 768)})) is None


def test_welcome_offers_the_reference_type_for_flux_with_redux_and_siglip(
    tmp_path_factory, flux_root
):
    from dreamwire.backend.conditioning.capabilities import control_capabilities
    from dreamwire.backend.conditioning.unit_resolution import pick
    from dreamwire.backend.library import ModelLibrary

    both = control_capabilities(ModelLibrary([_root(tmp_path_factory, flux_root, True)]), pick)
    served = both["control_types"]["flux"]["ip-adapter"]
    assert served == "tiny-flux1-redux + tiny-sigclip_vision"
    lacking = ModelLibrary([_root(tmp_path_factory, flux_root, False)])
    why = control_capabilities(lacking, pick)["control_missing"]["flux"]["ip-adapter"]
    assert "sigclip_vision_patch14_384.safetensors" in why


def test_fill_and_kontext_take_reference_units_too(redux_engine):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    for model, kw in (
        ("tiny-flux-fill", dict(init_image=image, mask=mask)),
        ("tiny-flux-kontext", dict(init_image=image, mode="edit")),
    ):
        base = {**BASE, "model": model, "steps": 2, **kw}
        with_unit = redux_engine.run(Job(**base, controls=[unit()])).images[0].image
        assert diff(with_unit, redux_engine.run(Job(**base)).images[0].image) > 0, model
