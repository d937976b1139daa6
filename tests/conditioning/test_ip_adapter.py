"""IP-Adapter units: the engine's result equals diffusers' pipeline with load_ip_adapter and
the same image encoder; weight 0 and the start/end window follow A1111; the cached UNet is
left exactly as it was; missing encoders are named; SDXL, ControlNets alongside, batches
and AND prompts run."""

from __future__ import annotations

import copy
import shutil

import diffusers
import numpy as np
import pytest
import torch
from cn_helpers import BASE, SIZE, maxdiff, noise_image, run_job_settings
from PIL import Image
from transformers import CLIPImageProcessor

from dreamwire.backend.conditioning import controlnet_files, ip_adapter_files
from dreamwire.backend.samplers import make_scheduler
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job
from tests.support.engines import cpu_engine

PLAIN, PLUS, XL = "ip-adapter_sd15", "ip-adapter-plus_sd15", "ip-adapter_sdxl"
REF = noise_image(31, 32, 32)  # the tiny encoders read 32 x 32: no resize on either side


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **kw})


def unit(model=PLAIN, **kw) -> ControlUnit:
    return ControlUnit(type="ip-adapter", image=kw.pop("image", REF), model=model, **kw)


def snapshot(unet):
    """What the IP-Adapter loader changes, to compare by identity: the processor objects,
    where every module keeps each attribute (a registered `_modules` entry or a plain one:
    torch.compile's guards look it up where it was), the projection, the config's
    attributes and items, the weights' names and the hooks."""
    return (
        dict(unet.attn_processors),
        {name: (sorted(vars(m)), list(m._modules)) for name, m in unet.named_modules()},
        set(unet.state_dict()),
        unet.encoder_hid_proj,
        dict(vars(unet.config)),
        dict(unet.config),
        dict(unet._forward_pre_hooks),
    )


def reference(engine, tiny_models, tmp_path, weight_file, encoder_name, model="tiny-sd1", **kw):
    """diffusers' own pipeline: load_ip_adapter from a folder of the same file, the same
    encoder weights, on a copy of the engine's UNet."""
    comps = engine.load(model).components
    folder = tmp_path / "ipa"
    folder.mkdir(exist_ok=True)
    src = next(tiny_models.rglob(f"{weight_file}.safetensors"))
    shutil.copy(src, folder / src.name)
    enc = ip_adapter_files.inspect_encoder(
        tiny_models / "models" / "clip_vision" / f"{encoder_name}.safetensors"
    )
    encoder = ip_adapter_files.load_encoder(enc, torch.float32, "cpu")
    size = enc.image_size
    fe = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer")}
    parts["unet"] = copy.deepcopy(comps["unet"])
    parts["scheduler"] = make_scheduler("Euler", comps["scheduler"].config)
    if model == "tiny-sdxl":
        parts.update(text_encoder_2=comps["text_encoder_2"], tokenizer_2=comps["tokenizer_2"])
        pipe = diffusers.StableDiffusionXLPipeline(
            **parts, image_encoder=encoder, feature_extractor=fe
        )
    else:
        pipe = diffusers.StableDiffusionPipeline(
            **parts,
            safety_checker=None,
            feature_extractor=fe,
            image_encoder=encoder,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(str(folder), subfolder="", weight_name=src.name, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(kw.pop("scale", 1.0))
    return run_job_settings(pipe, ip_adapter_image=Image.fromarray(REF), **SIZE, **kw)


@pytest.fixture(scope="module")
def base_image(engine):
    return engine.run(job()).images[0].image


@pytest.mark.parametrize(("weight_file", "scale"), [(PLAIN, 0.8), (PLUS, 1.3)])
def test_equals_diffusers_load_ip_adapter(
    engine, seen, tiny_models, tmp_path, base_image, weight_file, scale
):
    unet = engine.load("tiny-sd1").components["unet"]
    before = snapshot(unet)
    out = engine.run(job(controls=[unit(weight_file, weight=scale)])).images[0].image
    ref = reference(engine, tiny_models, tmp_path, weight_file, "tiny-clip-vit-h", scale=scale)
    assert maxdiff(out, ref) <= 1
    assert maxdiff(out, base_image) > 10  # the reference really steers the image
    assert seen.calls["ip_adapter"] == [[True]] * 4  # one CFG call per step
    after = snapshot(unet)
    assert after == before  # processors, weights, projection, config, hooks: as they were


def test_weight_zero_and_window(engine, seen, base_image):
    out = engine.run(job(controls=[unit(weight=0.0)])).images[0].image
    assert np.array_equal(out, base_image)
    full = engine.run(job(controls=[unit()])).images[0].image
    late = engine.run(job(controls=[unit(start=0.5)])).images[0].image
    # A1111's window: a unit runs at step i of n when start <= i/n <= end (steps 2 and 3).
    assert seen.calls["ip_adapter"] == [[False], [False], [True], [True]]
    assert maxdiff(late, base_image) > 0 and maxdiff(late, full) > 0


def test_missing_encoder_is_named(tiny_models, tmp_path):
    root = tmp_path / "webui"
    (root / "models" / "ControlNet").mkdir(parents=True)
    (root / "models" / "Stable-diffusion").mkdir()
    for name in ("tiny-sd1.safetensors",):
        (root / "models" / "Stable-diffusion" / name).symlink_to(
            tiny_models / "models" / "Stable-diffusion" / name
        )
    (root / "models" / "ControlNet" / f"{PLAIN}.safetensors").symlink_to(
        tiny_models / "models" / "ControlNet" / f"{PLAIN}.safetensors"
    )

    eng = cpu_engine(root, cache_size=None)
    with pytest.raises(DreamwireError) as err:
        eng.run(job(model="tiny-sd1", controls=[unit()]))
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "clip_vision" in str(err.value) and "projection 48" in str(err.value)


def test_real_shapes_name_the_encoder(tiny_models):
    info = controlnet_files.inspect(tiny_models / "models" / "ipadapter" / f"{XL}.safetensors")
    assert info.type == "ip-adapter" and not info.ip_adapter.plus
    real_h = ip_adapter_files.IPAdapterFile(False, 768, 4, 16, "image_embeds", 1024)
    real_g = ip_adapter_files.IPAdapterFile(False, 2048, 4, 70, "image_embeds", 1280)
    real_plus = ip_adapter_files.IPAdapterFile(True, 768, 16, 16, "hidden_states", 1280)
    assert real_h.encoder_label == real_plus.encoder_label == "CLIP ViT-H/14"
    assert real_g.encoder_label == "CLIP ViT-bigG/14" and real_g.family == "SDXL"
    with pytest.raises(DreamwireError) as err:
        ip_adapter_files.pick_encoder(real_g, "ip-adapter_sdxl", [])
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors" in str(err.value)
    with pytest.raises(DreamwireError) as err:
        ip_adapter_files.pick_encoder(real_h, "ip-adapter_sd15", [], "ip-adapter_clip_sdxl")
    assert err.value.code == ErrorCode.MODEL_MISMATCH


def test_pickle_refused(engine, tmp_path):
    path = tmp_path / "ip-adapter_sd15.bin"
    torch.save({"image_proj": {}, "ip_adapter": {}}, path)
    with pytest.raises(DreamwireError) as err:
        controlnet_files.inspect(path)
    assert err.value.code == ErrorCode.MODEL_UNSAFE


def test_sdxl_equals_diffusers(engine, tiny_models, tmp_path):
    xl = dict(model="tiny-sdxl", cfg=5.0)
    unet = engine.load("tiny-sdxl").components["unet"]
    before = snapshot(unet)
    out = engine.run(job(controls=[unit(XL, preprocessor="ip-adapter_clip_sdxl")], **xl))
    ref = reference(
        engine, tiny_models, tmp_path, XL, "tiny-clip-vit-bigg", "tiny-sdxl", guidance_scale=5.0
    )
    assert maxdiff(out.images[0].image, ref) <= 1
    assert snapshot(unet) == before


def test_with_controlnet_batch_and_and_prompt(engine, seen, base_image):
    canny = ControlUnit(type="canny", image=noise_image(32), model="control_v11p_sd15_canny")
    two = [unit(weight=0.7), unit(PLUS, image=noise_image(33, 32, 32), weight=0.6)]
    out = engine.run(job(controls=[canny, *two], batch=2, prompt="a wall AND moss :0.5"))
    assert len(out.images) == 2
    assert all(maxdiff(i.image, base_image) > 5 for i in out.images)
    assert seen.stacks["controlnet"] is not None  # the ControlNet ran beside the adapters
    unet = engine.load("tiny-sd1").components["unet"]
    assert not any("IPAdapter" in type(p).__name__ for p in unet.attn_processors.values())
    assert unet.encoder_hid_proj is None


def test_img2img_hires_and_cancel_restore(engine, seen):
    """Without an image the unit takes the img2img picture, as A1111 does; a Hires.fix pass
    keeps the adapters; a cancelled job still leaves the UNet as it was."""
    init = noise_image(34)
    i2i = dict(init_image=init, strength=0.6)
    own = engine.run(job(controls=[unit(image=None)], **i2i)).images[0].image
    given = engine.run(job(controls=[unit(image=init)], **i2i)).images[0].image
    assert np.array_equal(own, given)
    hires = engine.run(job(controls=[unit()], hires=HiresFix(scale=1.5, steps=2)))
    assert hires.images[0].image.shape[:2] == (96, 96)
    assert len(seen.calls["ip_adapter"]) > 4  # the second pass ran the adapter too
    unet = engine.load("tiny-sd1").components["unet"]
    before = snapshot(unet)
    calls = iter(range(100))
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[unit()]), should_cancel=lambda: next(calls) > 2)
    assert err.value.code == ErrorCode.CANCELLED
    assert snapshot(unet) == before


def test_infotext_names_the_unit(engine):
    out = engine.run(job(controls=[unit(preprocessor="ip-adapter_clip_sd15", weight=0.5)]))
    text = out.images[0].infotext
    assert '"Module: ip-adapter_clip_sd15, Model: ip-adapter_sd15 [' in text
    assert "Weight: 0.5" in text


def test_unit_and_file_must_agree(engine):
    out = engine.run(job(controls=[unit(model="")]))  # picked by type for the SD1 model
    assert "Model: ip-adapter" in out.images[0].infotext
    wrong = [
        ControlUnit(type="depth", image=REF, model=PLAIN),
        unit(model="control_v11p_sd15_canny"),
        unit(model=XL),  # an SDXL adapter on an SD1 model
    ]
    for bad in wrong:
        with pytest.raises(DreamwireError) as err:
            engine.run(job(controls=[bad]))
        assert err.value.code == ErrorCode.MODEL_MISMATCH, str(err.value)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[unit(preprocessor="canny")]))
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE


def test_a_unit_naming_no_model_takes_the_plain_adapter(engine):
    """Krita AI Diffusion's Reference default: ip-adapter_sd15, not the plus file beside it."""
    out = engine.run(job(controls=[unit(model="")]))
    text = out.images[0].infotext
    assert "Model: ip-adapter_sd15 [" in text and "ip-adapter-plus" not in text


def test_a_compiled_unet_keeps_its_graph_after_a_job(library):
    """The GPU fast path compiles the UNet; an IP-Adapter job must leave every guard it took
    holding, or the next plain job recompiles the whole UNet. The probe reads what the
    loader changes: the encoder-state projection and the config through the UNet's own
    process_encoder_hidden_states, and a cross-attention block with its processors. One
    block, not the whole UNet: the same guards in about a second instead of ~10 s. An
    engine of its own: the UNet must not have seen an IP-Adapter job before this one."""

    eng = cpu_engine(library)
    unet = eng.load("tiny-sd1").components["unet"]
    before = snapshot(unet)
    block = unet.down_blocks[0].attentions[0]

    @torch.compile(backend="eager", dynamic=False)
    def probe(hidden, text):
        text = unet.process_encoder_hidden_states(text, None)
        return block(hidden, encoder_hidden_states=text).sample

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, block.config.in_channels, 8, 8, generator=g)
    text = torch.randn(2, 7, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        first = probe(hidden, text)
        eng.run(job(controls=[unit(PLUS)]))  # a resampler: the widest change
        assert eng.load("tiny-sd1").components["unet"] is unet
        # Any failed guard recompiles, which this turns into an error naming the guard.
        with torch._dynamo.config.patch(error_on_recompile=True):
            again = probe(hidden, text)
    assert torch.equal(again, first)
    assert snapshot(unet) == before
