"""DAAM attention maps (engine/daam.py, daam_conditioner.py) on the tiny SD1 model: one
map per word, DAAM's sums and normalisation (recomputed here from the attention layers'
own inputs), the image unchanged, no processor left behind, refusals by name."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamwire.backend.engine import family_support
from dreamwire.backend.engine.daam import map_shape, word_positions
from dreamwire.backend.engine.hooks import TapProcessor, tap_names
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.protocol import parse_result, result_message

PROMPT = "a red fox, a red (barn:1.2) <lora:none:0.5>"
WORDS = ["a", "red", "fox", "barn"]


def job(**kw) -> Job:
    base = dict(prompt=PROMPT, sampler="Euler", steps=2, width=64, height=48, seed=5, batch=2)
    return Job(**{**base, **kw})


def _daam_reference(calls, images: int, latent, size) -> torch.Tensor:
    """DAAM recomputed from every cross-attention call's inputs, written out plainly:
    softmax(QK^T * scale) of the cond half, summed over steps per (layer, head), each
    bicubic to the latent and clamped at 0, the mean over (layer, head)."""
    sums: dict[str, torch.Tensor] = {}
    for layer, attn, x, ctx in calls:
        x, ctx = x[images:], ctx[images:]  # CFG: [uncond, cond]
        q = attn.to_q(x).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
        k = attn.to_k(ctx).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
        p = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, -1)  # B,H,hw,T
        sums[layer] = sums.get(layer, 0) + p
    ups = []
    for p in sums.values():
        hw = p.shape[2]
        h = latent[0] // round((latent[0] * latent[1] / hw) ** 0.5)
        m = p.transpose(2, 3).unflatten(-1, (h, hw // h))  # B,H,T,h,w
        for head in range(m.shape[1]):
            up = F.interpolate(m[:, head], size=latent, mode="bicubic").clamp(min=0)
            ups.append(up)
    return torch.stack(ups).mean(0)  # B,T,latent


@pytest.fixture(scope="module")
def runs(engine):
    plain = engine.run(job())
    unet = engine.load("tiny-sd1").components["unet"]
    before = {n: m.processor for n, m in unet.named_modules() if n.endswith("attn2")}
    calls = []

    def spy(module, args, kwargs):
        ctx = kwargs.get("encoder_hidden_states")
        calls.append((names[module], module, args[0].clone(), ctx.clone()))

    # DAAM's layers: the down and up blocks' cross-attentions, not the mid block's.
    names = {
        m: n
        for n, m in unet.named_modules()
        if n.endswith("attn2") and not n.startswith("mid_block")
    }
    handles = [m.register_forward_pre_hook(spy, with_kwargs=True) for m in names]
    try:
        mapped = engine.run(job(attention_maps=True))
    finally:
        for h in handles:
            h.remove()
    after = {n: m.processor for n, m in unet.named_modules() if n.endswith("attn2")}
    return SimpleNamespace(plain=plain, mapped=mapped, calls=calls, before=before, after=after)


def test_one_map_per_word_at_the_image_size(runs):
    for g in runs.mapped.images:
        assert [h.word for h in g.heat_maps] == WORDS
        for h in g.heat_maps:
            assert h.image.shape == g.image.shape[:2] and h.image.dtype == np.uint8
            assert h.image.min() == 0 and h.image.max() == 255  # min-max normalised
    assert all(not g.heat_maps for g in runs.plain.images)


def test_the_image_is_unchanged(runs):
    for a, b in zip(runs.plain.images, runs.mapped.images, strict=True):
        assert np.array_equal(a.image, b.image)


def test_processors_are_removed_after_the_job(runs, engine):
    assert runs.after == runs.before and all(runs.after[n] is runs.before[n] for n in runs.before)
    assert not any(isinstance(p, TapProcessor) for p in runs.after.values())
    assert tap_names(engine.load("tiny-sd1").components["unet"]) == []


def test_maps_follow_daam(runs, engine):
    comps = engine.load("tiny-sd1").components
    pipe = SimpleNamespace(tokenizer=comps["tokenizer"], text_encoder=comps["text_encoder"])
    positions = word_positions(pipe, PROMPT)
    # "red" twice: both occurrences' tokens merge, as DAAM's merge indices do.
    assert len(positions["red"]) == 2 and len(positions["a"]) == 2
    latent = (48 // 8, 64 // 8)
    tokens = _daam_reference(runs.calls, 2, latent, (48, 64))
    for i, g in enumerate(runs.mapped.images):
        for h in g.heat_maps:
            word = tokens[i, positions[h.word]].mean(0)
            up = F.interpolate(word[None, None], size=(48, 64), mode="bicubic")[0, 0]
            want = ((up - up.min()) / (up.max() - up.min() + 1e-8) * 255).round()
            assert np.abs(h.image.astype(int) - want.numpy().astype(int)).max() <= 1, h.word
    # The two images' maps differ (each reads its own batch entry).
    a, b = (g.heat_maps[2].image for g in runs.mapped.images)
    assert not np.array_equal(a, b)


def test_map_shape_follows_the_unet_levels():
    assert map_shape((6, 8), 48) == (6, 8, 1)
    assert map_shape((6, 8), 12) == (3, 4, 2)
    assert map_shape((5, 7), 12) == (3, 4, 2)  # odd sides round up, as the convs do
    assert map_shape((6, 8), 7) is None


def test_refusals_by_name():
    for family in ("flux",):
        with pytest.raises(DreamwireError) as err:
            family_support.check(job(attention_maps=True, batch=1), family)
        assert err.value.code is ErrorCode.MODEL_UNSUPPORTED
        assert "attention heat maps" in str(err.value)
    with pytest.raises(DreamwireError) as err:
        family_support.check(job(attention_maps=True, prompt="a cat AND a dog"), "sd1")
    assert err.value.code is ErrorCode.INVALID_JOB and "AND prompts" in str(err.value)
    with pytest.raises(DreamwireError, match="attention maps") as err:
        job(attention_maps=True, upscale=None, regions=[_region()]).validate()
    with pytest.raises(DreamwireError, match="attention_maps"):
        job(attention_maps="yes").validate()


def _region():
    from dreamwire.shared.job import Region

    return Region(prompt="x", mask=np.full((48, 64), 255, np.uint8))


def test_maps_travel_on_the_wire(runs):
    back = parse_result(result_message(runs.mapped))
    for a, b in zip(runs.mapped.images, back.images, strict=True):
        assert [h.word for h in b.heat_maps] == WORDS
        assert all(
            np.array_equal(x.image, y.image) for x, y in zip(a.heat_maps, b.heat_maps, strict=True)
        )
        assert np.array_equal(a.image, b.image)


def test_cli_asks_and_the_store_writes_them_beside_the_image(runs, tmp_path):
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job
    from dreamwire.backend.store import ResultStore, read_png

    argv = ["generate", "--prompt", "a fox", "--width", "64", "--height", "64"]
    assert build_job(build_parser().parse_args([*argv, "--attention-maps"])).attention_maps
    assert not build_job(build_parser().parse_args(argv)).attention_maps
    store = ResultStore(tmp_path)
    saved = store.save(job(attention_maps=True), runs.mapped)
    for g, made in zip(saved.images, runs.mapped.images, strict=True):
        for h in made.heat_maps:
            path = tmp_path.joinpath(g.path).with_name(f"{Path(g.path).stem}-daam-{h.word}.png")
            assert np.array_equal(read_png(path)[0], h.image)
    again = store.load(runs.mapped.job_id)
    assert [[h.word for h in g.heat_maps] for g in again.images] == [WORDS, WORDS]
