"""Style and Composition IP-Adapter units (ip-adapter-style / ip-adapter-composition):
IPAdapter_plus's block tables are InstantStyle's diffusers maps on the real UNets; a unit's
result equals diffusers' pipeline with load_ip_adapter + set_ip_adapter_scale(block map);
blocks outside the map get scale 0 during the steps; weight 0 is no adapter; Reference and
Composition units run together with their own maps; the cached UNet is left as it was."""

from __future__ import annotations

import copy
import json
import shutil

import diffusers
import numpy as np
import pytest
import torch
from cn_helpers import BASE, SIZE, maxdiff, noise_image, run_job_settings
from diffusers.loaders.unet_loader_utils import _maybe_expand_lora_scales
from PIL import Image
from test_ip_adapter import REF, snapshot
from transformers import CLIPImageProcessor

from dreamwire import catalog
from dreamwire.backend.conditioning import ip_adapter_blocks, ip_adapter_files
from dreamwire.backend.samplers import make_scheduler
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job

XL = dict(model="tiny-sdxl", cfg=5.0)
XL_FILE = "ip-adapter_sdxl"
REF2 = noise_image(35, 32, 32)


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **XL, **kw})


def unit(kind, **kw) -> ControlUnit:
    return ControlUnit(
        type=kind,
        image=kw.pop("image", REF),
        model=XL_FILE,
        preprocessor="ip-adapter_clip_sdxl",
        **kw,
    )


def _expanded(unet, scale_map) -> dict[str, float]:
    """diffusers' own expansion of a set_ip_adapter_scale map (unmapped blocks 0)."""
    (out,) = _maybe_expand_lora_scales(unet, [scale_map], default_scale=0.0)
    return out


@pytest.mark.parametrize(
    ("arch", "family", "style", "composition"),
    [
        # diffusers' docs: InstantStyle on SDXL.
        (
            "sdxl-base",
            "sdxl",
            {"up": {"block_0": [0.0, 1.0, 0.0]}},
            {"down": {"block_2": [0.0, 1.0]}},
        ),
        (
            "sd1",
            "sd1",
            {
                "down": {"block_0": 1.0, "block_1": 1.0},
                "up": {"block_1": [0.0, 0.0, 1.0], "block_2": 1.0, "block_3": 1.0},
            },
            {"down": {"block_2": [0.25, 1.0]}},
        ),
    ],
)
def test_tables_are_the_instantstyle_maps(arch, family, style, composition):
    """On the real UNet layouts (built on the meta device: names only), IPAdapter_plus's
    transformer_index tables select exactly the blocks of these diffusers maps."""
    from accelerate import init_empty_weights

    cfg = json.loads((catalog.config_dir(arch) / "unet" / "config.json").read_text())
    with init_empty_weights():
        unet = diffusers.UNet2DConditionModel.from_config(cfg)
    assert len(ip_adapter_blocks.attention_blocks(cfg)) == (11 if family == "sdxl" else 16)
    for kind, scale_map in (("ip-adapter-style", style), ("ip-adapter-composition", composition)):
        ours = ip_adapter_blocks.block_factors(kind, family, cfg)
        theirs = {k: v for k, v in _expanded(unet, scale_map).items() if v}
        assert ours == theirs, kind
    assert ip_adapter_blocks.block_factors("ip-adapter", family, cfg) is None


def _diffusers(engine, tiny_models, tmp_path, images, scales):
    """diffusers' SDXL pipeline: load_ip_adapter of the same file once per unit, the same
    encoder, set_ip_adapter_scale(list of maps), on a copy of the engine's UNet."""
    comps = engine.load("tiny-sdxl").components
    folder = tmp_path / "ipa"
    folder.mkdir(exist_ok=True)
    src = next(tiny_models.rglob(f"{XL_FILE}.safetensors"))
    shutil.copy(src, folder / src.name)
    enc = ip_adapter_files.inspect_encoder(
        tiny_models / "models" / "clip_vision" / "tiny-clip-vit-bigg.safetensors"
    )
    encoder = ip_adapter_files.load_encoder(enc, torch.float32, "cpu")
    size = enc.image_size
    fe = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "text_encoder_2")}
    parts.update(tokenizer_2=comps["tokenizer_2"], unet=copy.deepcopy(comps["unet"]))
    parts["scheduler"] = make_scheduler("Euler", comps["scheduler"].config)
    pipe = diffusers.StableDiffusionXLPipeline(**parts, image_encoder=encoder, feature_extractor=fe)
    pipe.set_progress_bar_config(disable=True)
    n = len(images)
    pipe.load_ip_adapter(
        [str(folder)] * n, subfolder=[""] * n, weight_name=[src.name] * n, image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale(scales)
    pil = [Image.fromarray(i) for i in images]
    return run_job_settings(pipe, ip_adapter_image=pil, **SIZE, guidance_scale=5.0)


class ScaleProbe:
    """Reads every IP-Adapter processor's scales when the UNet's first down block runs (a
    hook on a submodule: the UNet's own hooks stay as they were)."""

    def __init__(self, unet):
        self.unet, self.calls = unet, []
        self._h = unet.down_blocks[0].register_forward_pre_hook(self._read)

    def _read(self, module, args):
        self.calls.append(
            {
                n.removesuffix(".processor"): list(p.scale)
                for n, p in self.unet.attn_processors.items()
                if hasattr(p, "to_k_ip")
            }
        )

    def close(self):
        self._h.remove()


@pytest.fixture(scope="module")
def xl_base(engine):
    return engine.run(job()).images[0].image


def test_composition_equals_diffusers_and_zeroes_other_blocks(
    engine, tiny_models, tmp_path, xl_base
):
    """IPAdapter_plus's SDXL composition block is transformer 3: on tiny-sdxl (4 attention
    transformers) up_blocks.0.attentions.1, diffusers' {"up": {"block_0": [0.0, s]}}."""
    unet = engine.load("tiny-sdxl").components["unet"]
    before = snapshot(unet)
    probe = ScaleProbe(unet)
    try:
        out = engine.run(job(controls=[unit("ip-adapter-composition", weight=1.4)]))
    finally:
        probe.close()
    ref = _diffusers(engine, tiny_models, tmp_path, [REF], {"up": {"block_0": [0.0, 1.4]}})
    assert maxdiff(out.images[0].image, ref) <= 1
    assert maxdiff(out.images[0].image, xl_base) > 5  # the one block really steers
    assert len(probe.calls) == 4
    for scales in probe.calls:
        on = {k for k, v in scales.items() if v != [0.0]}
        assert on == {"up_blocks.0.attentions.1.transformer_blocks.0.attn2"}
        assert scales["up_blocks.0.attentions.1.transformer_blocks.0.attn2"] == [1.4]
    assert snapshot(unet) == before


def test_weight_zero_window_and_refused_layout(engine, seen, xl_base):
    out = engine.run(job(controls=[unit("ip-adapter-composition", weight=0.0)]))
    assert np.array_equal(out.images[0].image, xl_base)
    engine.run(job(controls=[unit("ip-adapter-composition", start=0.5)]))
    assert seen.calls["ip_adapter"] == [[False], [False], [True], [True]]
    # SDXL's style block (transformer 6) is not in tiny-sdxl's 4: refused before any step,
    # naming the mode, rather than run as a silent no-op.
    unet = engine.load("tiny-sdxl").components["unet"]
    before = snapshot(unet)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(controls=[unit("ip-adapter-style")]))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "style transfer" in str(err.value) and "has 4" in str(err.value)
    assert snapshot(unet) == before


def test_style_map_equals_diffusers(engine, tiny_models, tmp_path, monkeypatch):
    """The style path with a table whose block exists on tiny-sdxl (the mid block,
    transformer 1): the engine matches diffusers' {"mid": s} and nothing else runs."""
    monkeypatch.setitem(ip_adapter_blocks.TABLES, ("sdxl", "style transfer"), {1: 1.0})
    unet = engine.load("tiny-sdxl").components["unet"]
    probe = ScaleProbe(unet)
    try:
        out = engine.run(job(controls=[unit("ip-adapter-style", weight=1.2)]))
    finally:
        probe.close()
    ref = _diffusers(engine, tiny_models, tmp_path, [REF], {"mid": 1.2})
    assert maxdiff(out.images[0].image, ref) <= 1
    on = {k for k, v in probe.calls[0].items() if v != [0.0]}
    assert on == {"mid_block.attentions.0.transformer_blocks.0.attn2"}


def test_reference_and_composition_together(engine, tiny_models, tmp_path, seen):
    """Two adapters, each with its own map: diffusers' list of scale maps."""
    unet = engine.load("tiny-sdxl").components["unet"]
    before = snapshot(unet)
    two = [unit("ip-adapter", weight=0.6), unit("ip-adapter-composition", image=REF2, weight=0.9)]
    out = engine.run(job(controls=two)).images[0].image
    ref = _diffusers(
        engine, tiny_models, tmp_path, [REF, REF2], [0.6, {"up": {"block_0": [0.0, 0.9]}}]
    )
    assert maxdiff(out, ref) <= 1
    assert seen.calls["ip_adapter"] == [[True, True]] * 4
    assert snapshot(unet) == before
