"""LoRA: A1111's arithmetic on the weights, exact restore, and clear refusals."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from cn_helpers import BASE
from safetensors.torch import load_file

from dreamwire.backend.conditioning import lora
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, LoraRef


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", **kw})


@pytest.fixture(scope="module")
def sd1(engine):
    return engine.load("tiny-sd1").components


@pytest.fixture(scope="module")
def base_image(engine):
    return engine.run(job()).images[0].image


def _snapshot(*modules) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _patched_weight(sd1, path, name: str, weight: float):
    """One attention weight of the first UNet transformer block (`name` such as
    "attn1.to_q") before and while the LoRA file at `path` is applied at `weight`; checks that
    restoring the patch brings the weight back."""
    module = _first_block(sd1)
    for part in name.split("."):
        module = getattr(module, part)
    param = module.weight
    before = param.detach().clone()
    patch = lora.apply([(lora.read(path), weight, weight)], sd1, "tiny-sd1")
    try:
        during = param.detach().clone()
    finally:
        patch.restore()
    assert torch.equal(param.detach(), before)
    return before, during


def _first_block(sd1):
    return sd1["unet"].down_blocks[0].attentions[0].transformer_blocks[0]


def test_kohya_delta_is_w_alpha_over_rank_up_down(sd1, lora_dir):
    path = lora_dir / "tiny_style.safetensors"
    raw = load_file(str(path))
    unet, te = sd1["unet"], sd1["text_encoder"]
    before_unet, before_te = _snapshot(unet, te)
    patch = lora.apply([(lora.read(path), 0.7, 0.4)], sd1, "tiny-sd1")
    try:
        after_unet, after_te = _snapshot(unet, te)
        checked = 0
        for key in [k for k in raw if k.endswith(".lora_down.weight")]:
            base = key.removesuffix(".lora_down.weight")
            down, up = raw[key].float(), raw[base + ".lora_up.weight"].float()
            alpha, rank = float(raw[base + ".alpha"]), down.shape[0]
            part, _, module = base.partition("_")[2].partition("_")
            if part == "unet":
                name, before, after, w = module, before_unet, after_unet, 0.7
            else:
                name = module.removeprefix("text_model_")
                before, after, w = before_te, after_te, 0.4
            pkey = next(
                k for k in before if k.endswith(".weight") and k[:-7].replace(".", "_") == name
            )
            product = up.reshape(up.shape[0], -1) @ down.reshape(rank, -1)
            expected = before[pkey] + (product.reshape(before[pkey].shape) * w * (alpha / rank))
            torch.testing.assert_close(after[pkey], expected, rtol=0, atol=1e-6)
            assert not torch.equal(after[pkey], before[pkey])
            checked += 1
        assert checked == 10  # 7 UNet modules (2 of them convolutions) and 3 text-encoder ones
        changed = [k for k in before_unet if not torch.equal(before_unet[k], after_unet[k])]
        assert len(changed) == 7  # nothing else was touched
    finally:
        patch.restore()
    assert _same(before_unet, unet.state_dict()) and _same(before_te, te.state_dict())


def test_peft_file_has_scale_one(sd1, lora_dir):
    path = lora_dir / "tiny_peft.safetensors"
    raw = load_file(str(path))
    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    before, during = _patched_weight(sd1, path, "attn1.to_q", 1.5)
    expected = before + (raw[key + ".lora_B.weight"] @ raw[key + ".lora_A.weight"]) * 1.5
    torch.testing.assert_close(during, expected, rtol=0, atol=1e-6)


def test_loha_is_applied_with_the_hadamard_product(sd1, lora_dir):
    path = lora_dir / "tiny_loha.safetensors"
    raw = load_file(str(path))
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    before, during = _patched_weight(sd1, path, "attn2.to_k", 0.5)
    w1 = raw[key + ".hada_w1_a"] @ raw[key + ".hada_w1_b"]
    w2 = raw[key + ".hada_w2_a"] @ raw[key + ".hada_w2_b"]
    scale = float(raw[key + ".alpha"]) / raw[key + ".hada_w1_b"].shape[0]
    torch.testing.assert_close(during, before + w1 * w2 * 0.5 * scale, rtol=0, atol=1e-6)


def test_lora_tag_changes_the_image_and_the_next_job_is_the_base_again(engine, sd1, base_image):
    before = _snapshot(sd1["unet"], sd1["text_encoder"])
    styled = engine.run(job(prompt=BASE["prompt"] + " <lora:tiny_style:0.8>")).images[0].image
    assert np.abs(styled.astype(int) - base_image).max() > 5
    assert [
        _same(a, b.state_dict())
        for a, b in zip(before, (sd1["unet"], sd1["text_encoder"]), strict=True)
    ] == [True, True]
    again = engine.run(job()).images[0].image
    assert np.array_equal(again, base_image)


def test_job_field_equals_prompt_tag(engine):
    by_tag = engine.run(job(prompt=BASE["prompt"] + " <lora:tiny_style:0.6:0.9>")).images[0].image
    by_field = (
        engine.run(job(loras=[LoraRef("tiny_style", weight=0.9, weight_te=0.6)])).images[0].image
    )
    assert np.array_equal(by_tag, by_field)


def test_several_loras_add_up(engine, sd1, lora_dir):
    param = sd1["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    before = param.detach().clone()
    files = [
        lora.read(lora_dir / "tiny_style.safetensors"),
        lora.read(lora_dir / "tiny_peft.safetensors"),
    ]
    patch_a = lora.apply([(files[0], 1.0, 1.0)], sd1)
    delta_a = param.detach() - before
    patch_a.restore()
    patch_b = lora.apply([(files[1], 1.0, 1.0)], sd1)
    delta_b = param.detach() - before
    patch_b.restore()
    both = lora.apply([(files[0], 1.0, 1.0), (files[1], 1.0, 1.0)], sd1)
    try:
        torch.testing.assert_close(param.detach() - before, delta_a + delta_b, rtol=0, atol=1e-6)
    finally:
        both.restore()
    assert torch.equal(param.detach(), before)
    image = engine.run(job(prompt="moss <lora:tiny_style:1> <lora:tiny_peft:0.5>")).images[0].image
    assert image.shape == (64, 64, 3)


def test_sdxl_lora_on_sdxl_resolves_original_layout_names(engine, lora_dir):
    comps = engine.load("tiny-sdxl").components
    before = _snapshot(comps["unet"], comps["text_encoder"], comps["text_encoder_2"])
    patch = lora.apply(
        [(lora.read(lora_dir / "tiny_xl_style.safetensors"), 1.0, 1.0)], comps, "tiny-sdxl"
    )
    try:
        after = _snapshot(comps["unet"], comps["text_encoder"], comps["text_encoder_2"])
        changed = [
            sum(not torch.equal(a[k], b[k]) for k in a) for a, b in zip(before, after, strict=True)
        ]
        assert changed == [7, 3, 1]  # every module in the file found its layer
    finally:
        patch.restore()


def test_sdxl_lora_on_sd1_is_a_mismatch(engine, sd1, base_image):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(prompt="x <lora:tiny_xl_style:1>"))
    assert err.value.code == ErrorCode.MODEL_MISMATCH and "SDXL" in err.value.message
    assert np.array_equal(engine.run(job()).images[0].image, base_image)


def test_unknown_lora_name(engine):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(prompt="x <lora:no_such_lora:1>"))
    assert err.value.code == ErrorCode.LORA_NOT_FOUND and "no_such_lora" in err.value.message


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("tiny_lokr", ErrorCode.MODEL_UNSUPPORTED, "LoKr"),
        ("tiny_hypernet", ErrorCode.MODEL_UNSUPPORTED, "LoRA instead"),
    ],
)
def test_refused_kinds(engine, name, code, words):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(prompt=f"x <lora:{name}:1>"))
    assert err.value.code == code and words in err.value.message


def test_hypernet_tag_suggests_lora(engine):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(prompt="x <hypernet:anything:1>"))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "LoRA" in err.value.message


def test_corrupt_and_pickled_files(tmp_path, sd1):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(DreamwireError) as err:
        lora.read(corrupt)
    assert err.value.code == ErrorCode.MODEL_CORRUPT and "broken.safetensors" in err.value.message

    truncated = tmp_path / "cut.safetensors"
    good = (tmp_path.parent / "x").parent  # any folder; the file content matters below
    data = torch.zeros(4, 4)
    from safetensors.torch import save_file

    save_file({"lora_unet_a.lora_down.weight": data}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(DreamwireError) as err:
        lora.read(truncated)
    assert err.value.code == ErrorCode.MODEL_CORRUPT
    del good

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"lora_unet_x.lora_down.weight": Payload()}, evil)
    with pytest.raises(DreamwireError) as err:
        lora.read(evil)
    assert err.value.code == ErrorCode.MODEL_UNSAFE
    assert not marker.exists()


def test_failed_job_leaves_no_patch(engine, sd1, base_image):
    before = _snapshot(sd1["unet"])
    with pytest.raises(DreamwireError):
        engine.run(job(prompt="x <lora:tiny_style:1> <lora:tiny_lokr:1>"))
    assert _same(before[0], sd1["unet"].state_dict())
