"""Flux LoRAs: each download format patches a diffusers Flux transformer exactly as diffusers'
own loader does (FluxPipeline.load_lora_weights + fuse_lora), text encoders by Forge's
arithmetic, restore is bit for bit, and a LoRA for another family is refused by name.

Tolerance: float32 weights, deltas of ~1e-2; diffusers splits alpha/rank between the down and
up matrices and sums in another order, so patched weights agree to 1e-6 absolute (measured
at most 1.5e-8), not bit for bit. Restore is compared with torch.equal.
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from dreamwire.backend.conditioning import lora, lora_flux_keys
from dreamwire.backend.tiny import flux_lora
from dreamwire.backend.tiny.files import save_tensors
from dreamwire.shared.errors import DreamwireError, ErrorCode
from tests.support.engines import cpu_engine

# peft warns where a file's target name (the final layer's proj_out) also fits modules the
# file leaves alone (the single blocks' proj_out): those get no delta (checked below).
pytestmark = pytest.mark.filterwarnings("ignore:While injecting the PEFT adapters")

ATOL = 1e-6
MULTIPLIER = 0.7
# diffusers' kohya converter splits linear1 with Flux.1's widths written in (3072, 3072, 3072,
# 12288), so it cannot convert a tiny model's linear1: those four modules are checked against
# the converter at the real width instead (test_linear1_splits_like_diffusers_at_real_width).
LINEAR1_TARGETS = tuple(
    f"single_transformer_blocks.0.{n}" for n in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
)


@pytest.fixture(scope="module")
def flux():
    """The tiny Flux.1 dev's components: diffusers' transformer, CLIP-L, T5 and the VAE."""
    from dreamwire.backend.tiny.flux import flux_components

    return flux_components()


@pytest.fixture(scope="module")
def files(flux, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flux-loras")
    built = {
        name.removeprefix("flux_"): path for name, path in flux_lora.build(folder, flux).items()
    }
    # sd-scripts files always carry alphas; one without must scale by 1 (diffusers: alpha = rank).
    raw = load_file(str(built["kohya"]))
    no_alpha = {k: v for k, v in raw.items() if not k.endswith(".alpha")}
    built["kohya_no_alpha"] = save_tensors(no_alpha, folder / "flux_kohya_no_alpha.safetensors")
    return built


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


def _diffusers_fused(flux, path, multiplier: float, drop=()) -> dict[str, torch.Tensor]:
    """diffusers' own result: the file converted by diffusers' converters, loaded into a
    copy of the transformer through FluxPipeline and fused at `multiplier`."""
    from diffusers import FluxPipeline

    # diffusers' CLIP path expects transformers 4's module names and it drops T5 keys: the
    # text encoders are checked against Forge's arithmetic below instead.
    raw = {
        k: v
        for k, v in load_file(str(path)).items()
        if not k.startswith(("lora_te", "text_encoders.")) and not any(d in k for d in drop)
    }
    state, alphas = FluxPipeline.lora_state_dict(raw, return_alphas=True)
    state |= alphas or {}  # kept apart by lora_state_dict, read again by load_lora_weights
    # diffusers' kohya converter names the layers outside the blocks (x_embedder, norm_out
    # ...) without the "transformer." that load_lora_weights filters on, so it silently drops
    # them; prefixed here to compare them too.
    state = {k if k.startswith("transformer.") else f"transformer.{k}": v for k, v in state.items()}
    transformer = copy.deepcopy(flux["transformer"])
    pipe = FluxPipeline(
        scheduler=None,
        vae=None,
        text_encoder=None,
        tokenizer=None,
        text_encoder_2=None,
        tokenizer_2=None,
        transformer=transformer,
    )
    pipe.load_lora_weights(state)
    pipe.fuse_lora(components=["transformer"], lora_scale=multiplier)
    pipe.unload_lora_weights()  # keeps the fused weights, drops PEFT's wrappers
    return _weights(transformer)


@pytest.mark.parametrize("fmt", ["kohya", "kohya_no_alpha", "comfy", "peft", "peft_alpha", "xlabs"])
def test_transformer_patch_equals_diffusers_fuse_lora(flux, files, fmt):
    path = files[fmt]
    drop = (
        ("single_blocks_0_linear1", "single_blocks.0.linear1")
        if fmt.startswith(("kohya", "comfy"))
        else ()
    )
    expected = _diffusers_fused(flux, path, MULTIPLIER, drop)
    transformer = flux["transformer"]
    before = _weights(transformer)
    patch = lora.apply([(lora.read(path), MULTIPLIER, MULTIPLIER)], flux, "tiny-flux")
    try:
        during = _weights(transformer)
    finally:
        patch.restore()
    after = _weights(transformer)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before), "restore is not exact"

    skipped = LINEAR1_TARGETS if drop else ()
    changed = {n for n in before if not torch.equal(during[n], before[n])}
    by_diffusers = {n for n in before if not torch.equal(expected[n], before[n])}
    assert by_diffusers - changed == set()
    assert changed - by_diffusers == set(skipped)
    assert len(by_diffusers) >= 6  # the file reached the model at all
    for name in by_diffusers:
        diff = (during[name] - expected[name]).abs().max().item()
        assert diff <= ATOL, f"{fmt} {name}: {diff}"


def _module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    return dict(model.named_modules())[name]


@pytest.mark.parametrize("fmt", ["kohya", "comfy"])
def test_text_encoders_get_the_te_multiplier_times_alpha_over_rank(flux, files, fmt):
    """CLIP-L (lora_te1_ / text_encoders.clip_l) and T5 (lora_te3_ / text_encoders.t5xxl):
    W + up @ down * te multiplier * alpha / rank, as Forge; the transformer multiplier does
    not reach them."""
    raw = load_file(str(files[fmt]))
    clip_prefix, t5_prefix = (
        ("text_encoders.clip_l.transformer.", "text_encoders.t5xxl.transformer.")
        if fmt == "comfy"
        else ("lora_te1_", "lora_te3_")
    )
    layers = [
        ("text_encoder", n, clip_prefix + flux_lora.clip_file_name(n))
        for n in flux_lora.CLIP_LAYERS
    ]
    layers += [("text_encoder_2", n, t5_prefix + n) for n in flux_lora.T5_LAYERS]
    before = {(c, n): _module(flux[c], n).weight.detach().clone() for c, n, _ in layers}
    patch = lora.apply([(lora.read(files[fmt]), 0.3, 0.6)], flux, "tiny-flux")
    try:
        for component, name, key in layers:
            if fmt == "kohya":
                key = key.replace(".", "_")
            down, up = raw[f"{key}.lora_down.weight"], raw[f"{key}.lora_up.weight"]
            scale = float(raw[f"{key}.alpha"]) / down.shape[0]
            expected = before[(component, name)] + up @ down * 0.6 * scale
            got = _module(flux[component], name).weight.detach()
            assert (got - expected).abs().max().item() <= ATOL, (component, name)
    finally:
        patch.restore()
    for (component, name), weight in before.items():
        assert torch.equal(_module(flux[component], name).weight, weight)


def test_linear1_splits_like_diffusers_at_real_width(flux, tmp_path):
    """A single block's linear1 with Flux.1's real rows (diffusers' converter only takes those):
    to_q, to_k, to_v and proj_mlp get the rows diffusers gives them."""
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    # The converter fixes the output rows only: the layers' input width is kept small.
    inner, mlp, width, rank, alpha = 3072, 12288, 8, 2, 1.0
    gen = torch.Generator().manual_seed(3)
    key = "lora_unet_single_blocks_0_linear1"
    state = {
        f"{key}.lora_down.weight": torch.randn(rank, width, generator=gen) * 0.1,
        f"{key}.lora_up.weight": torch.randn(3 * inner + mlp, rank, generator=gen) * 0.1,
        f"{key}.alpha": torch.tensor(alpha),
    }
    converted = _convert_kohya_flux_lora_to_diffusers(dict(state))
    # The four target layers only, named as in the transformer, weights zero: the patched
    # weight is the delta.
    block = torch.nn.Module()
    block.attn = torch.nn.Module()
    for name in ("to_q", "to_k", "to_v"):
        setattr(block.attn, name, torch.nn.Linear(width, inner, bias=False))
    block.proj_mlp = torch.nn.Linear(width, mlp, bias=False)
    for p in block.parameters():
        p.requires_grad_(False).zero_()
    transformer = torch.nn.Module()
    transformer.single_transformer_blocks = torch.nn.ModuleList([block])
    path = save_tensors(state, tmp_path / "linear1.safetensors")
    patch = lora.apply([(lora.read(path), 0.5, 1.0)], {**flux, "transformer": transformer}, "flux")
    try:
        for name in LINEAR1_TARGETS:
            a = converted[f"transformer.{name}.lora_A.weight"]
            b = converted[f"transformer.{name}.lora_B.weight"]
            got = _module(transformer, name).weight
            assert (got - b @ a * 0.5).abs().max().item() <= ATOL, name
    finally:
        patch.restore()
    assert all(torch.count_nonzero(p) == 0 for p in block.parameters())


def _refused(loras, components, model_name) -> str:
    with pytest.raises(DreamwireError) as err:
        lora.apply(loras, components, model_name)
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    return str(err.value)


@pytest.mark.parametrize(("name", "made_for"), [("tiny_xl_style", "SDXL"), ("tiny_style", "SD1")])
def test_sd_loras_on_flux_are_refused_by_name(flux, lora_dir, name, made_for):
    before = _weights(flux["text_encoder"])
    message = _refused([(lora.read(lora_dir / f"{name}.safetensors"), 1.0, 1.0)], flux, "tiny-flux")
    assert f"LoRA {name} was made for {made_for}" in message and "tiny-flux (Flux.1)" in message
    after = _weights(flux["text_encoder"])
    assert all(torch.equal(after[n], before[n]) for n in before)


@pytest.mark.parametrize(("model", "label"), [("tiny-sdxl", "SDXL"), ("tiny-sd1", "SD1")])
def test_flux_lora_on_sd_models_is_refused_by_name(engine, files, model, label):
    components = engine.load(model).components
    for fmt in ("kohya", "peft", "xlabs"):
        message = _refused([(lora.read(files[fmt]), 1.0, 1.0)], components, model)
        assert f"made for Flux.1 models and cannot be used with {model} ({label}" in message


def test_fused_layer_of_another_width_is_refused_and_nothing_stays_patched(flux, files, tmp_path):
    """A qkv whose up matrix has rows for another width: a clear mismatch, and the layers
    patched before it are put back."""
    raw = load_file(str(files["kohya"]))
    key = "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"
    raw[key] = torch.cat([raw[key], raw[key][:3]])
    path = save_tensors(raw, tmp_path / "wrong_qkv.safetensors")
    before = _weights(flux["transformer"])
    message = _refused([(lora.read(path), 1.0, 1.0)], flux, "tiny-flux")
    assert "double_blocks_0_img_attn_qkv" in message and "rows" in message
    after = _weights(flux["transformer"])
    assert all(torch.equal(after[n], before[n]) for n in before)


@pytest.mark.parametrize(
    ("key", "targets"),
    [
        # fal's Kontext trainer: BFL names under base_model.model., PEFT slots
        (
            "base_model.model.double_blocks.3.txt_attn.qkv.lora_A.weight",
            (
                "transformer_blocks_3_attn_add_q_proj",
                "transformer_blocks_3_attn_add_k_proj",
                "transformer_blocks_3_attn_add_v_proj",
            ),
        ),
        # kohya names of diffusers modules (diffusers' "mixture" files)
        (
            "lora_transformer_single_transformer_blocks_7_attn_to_q.lora_down.weight",
            ("single_transformer_blocks_7_attn_to_q",),
        ),
        (
            "diffusion_model.single_blocks.2.modulation.lin.lora_B.weight",
            ("single_transformer_blocks_2_norm_linear",),
        ),
        (
            "lora_unet_double_blocks_18_txt_mlp_2.hada_w1_a",
            ("transformer_blocks_18_ff_context_net_2",),
        ),
    ],
)
def test_other_spellings_name_the_same_layers(key, targets):
    ref = lora_flux_keys.parse(key)
    assert ref is not None and ref.part == "transformer" and ref.fit.targets == targets


def test_dora_and_control_loras_are_refused_and_unknown_keys_are_named(files, tmp_path, caplog):
    raw = load_file(str(files["kohya"]))
    dora = {**raw, "lora_unet_double_blocks_0_img_attn_qkv.dora_scale": torch.ones(1, 32)}
    with pytest.raises(DreamwireError) as err:
        lora.read(save_tensors(dora, tmp_path / "dora.safetensors"))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "DoRA" in str(err.value)
    control = {**raw, "double_blocks.0.img_attn.norm.query_norm.scale": torch.ones(16)}
    with pytest.raises(DreamwireError) as err:
        lora.read(save_tensors(control, tmp_path / "control.safetensors"))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "Control LoRA" in str(err.value)
    # A bias diff (ComfyUI's .diff_b) is not applied: the rest is, and the log says which.
    extra = {**raw, "lora_unet_double_blocks_0_img_attn_qkv.diff_b": torch.ones(96)}
    with caplog.at_level("WARNING", logger="dreamwire.conditioning"):
        read = lora.read(save_tensors(extra, tmp_path / "diff_b.safetensors"))
    assert len(read.modules) == len(lora.read(files["kohya"]).modules)
    assert "1 keys not applied" in caplog.text and "diff_b" in caplog.text


# --- through the engine ---------------------------------------------------------------

PROMPT = "a cat sitting on a red chair"
FLUX_JOB = dict(
    model="tiny-flux", prompt=PROMPT, sampler="Euler", steps=4, cfg=1.0, width=64, height=64, seed=5
)


@pytest.fixture(scope="module")
def flux_lora_engine(flux, tmp_path_factory):
    """A CPU engine with the conditioners over the tiny Flux (a diffusers folder
    written from `flux`), its LoRA files and an SDXL one in models/Lora."""
    from dreamwire.backend.tiny.conditioning import build_kohya_sdxl
    from dreamwire.backend.tiny.flux import write_flux_diffusers_folder

    root = tmp_path_factory.mktemp("flux-lora-models")
    write_flux_diffusers_folder(flux, root / "models" / "Stable-diffusion" / "tiny-flux")
    flux_lora.build(root / "models" / "Lora", flux)
    build_kohya_sdxl(root / "models" / "Lora" / "tiny_xl_style.safetensors")
    return cpu_engine(root)


def _image(engine, **kw):
    from dreamwire.shared.job import Job

    return engine.run(Job(**{**FLUX_JOB, **kw})).images[0]


def _reference_with_lora(engine, path, multiplier: float):
    """diffusers' FluxPipeline on the engine's components, its own loader fusing the LoRA
    into a copy of the transformer."""
    from tests.support import flux_lora_reference

    comps = engine.load("tiny-flux", "").components
    return flux_lora_reference.run(comps, "FluxPipeline", path, multiplier, PROMPT, 4, 5)


def test_flux_lora_tag_in_a_job_equals_diffusers_and_the_next_job_is_the_base(
    flux_lora_engine, files
):
    import numpy as np

    base = _image(flux_lora_engine)
    tagged = _image(flux_lora_engine, prompt=f"{PROMPT} <lora:flux_peft_alpha:0.8>")
    expected = _reference_with_lora(flux_lora_engine, files["peft_alpha"], 0.8)
    changed = np.abs(tagged.image.astype(int) - base.image.astype(int)).max()
    assert changed > 2  # the LoRA moves the picture by more than the tolerance below
    # Weights agree to ~1e-8 (see the module docstring), pixels to a step of rounding.
    assert np.abs(tagged.image.astype(int) - expected.astype(int)).max() <= 1
    assert "Lora hashes: " in tagged.infotext and "flux_peft_alpha: " in tagged.infotext
    assert np.array_equal(_image(flux_lora_engine).image, base.image)


def test_flux_lora_job_field_and_tag_split_the_multipliers(flux_lora_engine):
    """loras=[LoraRef(name, weight, weight_te)] and A1111's <lora:name:te:unet>: the kohya
    file's CLIP and T5 layers take the text-encoder weight, the transformer's the other."""
    import numpy as np

    from dreamwire.shared.job import LoraRef

    base = _image(flux_lora_engine).image
    text_only = _image(flux_lora_engine, loras=[LoraRef("flux_kohya", 0.0, 0.8)]).image
    transformer_only = _image(flux_lora_engine, loras=[LoraRef("flux_kohya", 0.8, 0.0)]).image
    assert not np.array_equal(text_only, base)
    assert not np.array_equal(transformer_only, base)
    assert not np.array_equal(text_only, transformer_only)
    tag = _image(flux_lora_engine, prompt=f"{PROMPT} <lora:flux_kohya:0.8:0>").image
    assert np.array_equal(tag, text_only)


def test_sdxl_lora_tag_on_flux_job_is_refused(flux_lora_engine):
    with pytest.raises(DreamwireError) as err:
        _image(flux_lora_engine, prompt=f"{PROMPT} <lora:tiny_xl_style:1>")
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "tiny_xl_style was made for SDXL models and cannot be used with tiny-flux" in str(
        err.value
    )


def test_loha_on_a_fused_layer_splits_the_hadamard_product(flux, tmp_path):
    """LyCORIS LoHa on img_attn.qkv: ((w1a @ w1b) * (w2a @ w2b)) * alpha / rank, its rows over
    to_q, to_k, to_v."""
    transformer = flux["transformer"]
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    gen = torch.Generator().manual_seed(11)
    key, rank, alpha = "lora_unet_double_blocks_0_img_attn_qkv", 2, 1.0
    t = {
        "w1a": torch.randn(3 * inner, rank, generator=gen) * 0.1,
        "w1b": torch.randn(rank, inner, generator=gen) * 0.1,
        "w2a": torch.randn(3 * inner, rank, generator=gen) * 0.1,
        "w2b": torch.randn(rank, inner, generator=gen) * 0.1,
    }
    state = {f"{key}.hada_{s[:2]}_{s[2]}": v for s, v in t.items()}
    path = save_tensors(
        {**state, f"{key}.alpha": torch.tensor(alpha)}, tmp_path / "loha.safetensors"
    )
    delta = (t["w1a"] @ t["w1b"]) * (t["w2a"] @ t["w2b"]) * alpha / rank * MULTIPLIER
    names = [f"transformer_blocks.0.attn.{n}" for n in ("to_q", "to_k", "to_v")]
    before = {n: _module(transformer, n).weight.detach().clone() for n in names}
    patch = lora.apply([(lora.read(path), MULTIPLIER, 1.0)], flux, "tiny-flux")
    try:
        for name, rows in zip(names, delta.split(inner), strict=True):
            got = _module(transformer, name).weight
            assert (got - before[name] - rows).abs().max().item() <= ATOL, name
    finally:
        patch.restore()
    assert all(torch.equal(_module(transformer, n).weight, before[n]) for n in names)


def test_a_dev_lora_on_flux_fill_leaves_out_only_the_input_layer(files, caplog):
    """Fill's img_in takes 384 channels, dev's 64: a dev LoRA's img_in is left out (as Forge:
    "weight not merged"), every other layer applies as on dev."""
    from dreamwire.backend.tiny.flux import flux_components

    fill = flux_components("tiny-flux-fill")
    transformer = fill["transformer"]
    before = _weights(transformer)
    with caplog.at_level("WARNING", logger="dreamwire.conditioning"):
        patch = lora.apply([(lora.read(files["kohya"]), 1.0, 1.0)], fill, "tiny-flux-fill")
    try:
        during = _weights(transformer)
    finally:
        patch.restore()
    changed = {n for n in before if not torch.equal(during[n], before[n])}
    assert "x_embedder" not in changed and "img_in is for another input width" in caplog.text
    assert {"context_embedder", "proj_out", "transformer_blocks.0.attn.to_q"} <= changed
    after = _weights(transformer)
    assert all(torch.equal(after[n], before[n]) for n in before)
