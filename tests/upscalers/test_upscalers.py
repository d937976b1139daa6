"""Upscaler models (ESRGAN / Real-ESRGAN / Compact) as A1111 and Krita AI Diffusion run
them: both key layouts, the forward against a plain reference, A1111's tiling and pass
loop, safe loading, refusals, and Hires.fix with a model upscaler."""

from __future__ import annotations

import pickle
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.upscaler_layout import spec_of
from dreamwire.backend.tiny import upscalers as tiny
from dreamwire.backend.upscalers import loading, names, tiling, upscale
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import HiresFix, Job


def _state(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _root_with(tmp_path, files: dict[str, dict[str, torch.Tensor]]) -> ModelLibrary:
    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    for name, tensors in files.items():
        save_file(tensors, str(folder / name))
    return ModelLibrary([tmp_path])


# ---- key layouts -------------------------------------------------------------------------


def test_old_and_new_layouts_load_the_same_weights():
    net = tiny.esrgan(noise=0.3)
    new = _state(net)
    old = tiny.to_old_layout(new, upsamples=2)
    # The original ESRGAN names: first conv, dense blocks under model.1.sub, the trunk conv
    # after the last block (1 block here), up convs at 3 and 6, hr at 8, last at 10.
    assert {"model.0.weight", "model.1.sub.0.RDB3.conv5.0.bias", "model.1.sub.1.weight"} <= set(old)
    assert {"model.3.weight", "model.6.weight", "model.8.weight", "model.10.bias"} <= set(old)
    wrapped = {"params_ema": {"module." + k: v for k, v in new.items()}}
    # BSRGAN / RealSR: RRDB_trunk.N.RDB1.conv1, trunk_conv, upconv1, HRconv.
    renames = (
        (r"^body\.(\d+)\.rdb", r"RRDB_trunk.\1.RDB"),
        (r"^conv_body\.", "trunk_conv."),
        (r"^conv_up", "upconv"),
        (r"^conv_hr\.", "HRconv."),
    )
    bsrgan = {}
    for k, v in new.items():
        for pattern, repl in renames:
            k = re.sub(pattern, repl, k)
        bsrgan[k] = v
    assert "RRDB_trunk.0.RDB2.conv3.weight" in bsrgan and "HRconv.bias" in bsrgan
    for state in (old, new, wrapped, bsrgan):
        spec, module = loading.build(loading.unwrap(state) if state is wrapped else state)
        assert (spec.arch, spec.scale, spec.blocks, spec.feat, spec.grow) == (
            "ESRGAN",
            4,
            tiny.BLOCKS,
            tiny.FEAT,
            tiny.GROW,
        )
        got = module.state_dict()
        assert got.keys() == new.keys()
        assert all(torch.equal(got[k], new[k]) for k in new)


def test_scale_and_unshuffle_are_read_from_the_keys():
    x2 = spec_of(_state(tiny.esrgan(unshuffle=2)))[0]
    assert (x2.scale, x2.unshuffle, x2.in_ch, x2.upsamples) == (2, 2, 3, 2)
    x1 = spec_of(_state(tiny.esrgan(unshuffle=4)))[0]
    assert (x1.scale, x1.unshuffle) == (1, 4)
    # An old-layout 2x ESRGAN: one upsample, hr at model.5, last at model.7.
    old2 = tiny.to_old_layout(_state(tiny.esrgan(upsamples=1)), upsamples=1)
    assert "model.7.weight" in old2 and "model.6.weight" not in old2
    spec, _ = loading.build(old2)
    assert (spec.scale, spec.upsamples) == (2, 1)
    compact = spec_of(_state(tiny.compact()))[0]
    assert (compact.arch, compact.scale, compact.blocks, compact.feat) == ("Compact", 4, 2, 8)


def _reference_rrdbnet(x: torch.Tensor, sd: dict, blocks: int, ups: int) -> torch.Tensor:
    """ESRGAN's forward written out with F.conv2d over the original "model.N" names."""

    def conv(t, key):
        return F.conv2d(t, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=1)

    def lrelu(t):
        return torch.where(t >= 0, t, 0.2 * t)

    fea = conv(x, "model.0")
    trunk = fea
    for b in range(blocks):
        block_in = trunk
        for r in (1, 2, 3):
            rdb_in, feats = trunk, [trunk]
            for c in range(1, 6):
                y = conv(torch.cat(feats, 1), f"model.1.sub.{b}.RDB{r}.conv{c}.0")
                feats.append(lrelu(y) if c < 5 else y)
            trunk = feats[-1] * 0.2 + rdb_in
        trunk = trunk * 0.2 + block_in
    fea = fea + conv(trunk, f"model.1.sub.{blocks}")
    for i in range(1, ups + 1):
        fea = lrelu(conv(fea.repeat_interleave(2, -1).repeat_interleave(2, -2), f"model.{3 * i}"))
    return conv(lrelu(conv(fea, f"model.{3 * ups + 2}")), f"model.{3 * ups + 4}")


def test_forward_matches_a_plain_reference():
    torch.manual_seed(0)
    net = tiny.esrgan(noise=0.3)
    with torch.no_grad():
        for p in net.parameters():  # every weight random, the identity path included
            p.copy_(torch.randn_like(p) * 0.2)
    sd = tiny.to_old_layout(_state(net), 2)
    _, module = loading.build(sd)
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        ref = _reference_rrdbnet(x, sd, tiny.BLOCKS, 2)
        out = module(x)
    assert out.shape == (1, 3, 36, 28)
    assert torch.allclose(out, ref, atol=1e-5)
    # Real-ESRGAN x2: the same body over the 2x2 pixel-unshuffled input.
    net2 = tiny.esrgan(unshuffle=2, noise=0.3)
    sd2 = tiny.to_old_layout(_state(net2), 2)
    x2 = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        ref2 = _reference_rrdbnet(F.pixel_unshuffle(x2, 2), sd2, tiny.BLOCKS, 2)
        assert torch.allclose(net2(x2), ref2, atol=1e-5)


def test_identity_weights_give_nearest_neighbour_in_a1111_bgr_order(tmp_path):
    # conv_first/up/hr carry channel c, conv_last routes feature (c + 1) % 3 to output c: a
    # channel rotation that shows which order the pixels reach the model in.
    net = tiny.esrgan(noise=0.0)
    with torch.no_grad():
        net.conv_last.weight.zero_()
        for c in range(3):
            net.conv_last.weight[c, (c + 1) % 3, 1, 1] = 1.0
    lib = _root_with(tmp_path, {"ident.safetensors": tiny.to_old_layout(_state(net), 2)})
    img = _image(10, 13)
    nearest = img.repeat(4, 0).repeat(4, 1)
    # A1111 feeds BGR: the model sees [B, G, R], returns [G, R, B], read back as BGR.
    bgr = upscale(img, "ident", 4, library=lib)
    np.testing.assert_array_equal(bgr, nearest[..., [2, 0, 1]])
    # ComfyUI / Krita AI Diffusion feed RGB: [R, G, B] -> [G, B, R].
    rgb = upscale(img, "ident", 4, library=lib, bgr=False)
    np.testing.assert_array_equal(rgb, nearest[..., [1, 2, 0]])


# ---- running ------------------------------------------------------------------------------


def test_every_tiny_upscaler_gives_the_exact_size(library):
    img = _image(11, 9, seed=1)
    found = names(library)
    assert found[:2] == ["Lanczos", "Nearest"]
    models = [n for n in found if n.startswith("tiny-")]
    assert {"tiny-esrgan-4x", "tiny-realesrgan-x4", "tiny-realesrgan-x2"} <= set(models)
    assert {"tiny-compact-x4", "tiny-realesrgan-x4-ema"} <= set(models)  # .pth, params_ema
    # The scan labels them from their headers (`dreamwire models list`).
    archs = {e.name: e.arch for e in library.entries("upscaler")}
    assert archs["tiny-esrgan-4x"] == archs["tiny-realesrgan-x4"] == "ESRGAN 4x"
    assert (archs["tiny-realesrgan-x2"], archs["tiny-compact-x4"]) == ("ESRGAN 2x", "Compact 4x")
    for name in models:
        out = upscale(img, name, 2.5, library=library)
        assert out.shape == (28, 22, 3) and out.dtype == np.uint8, name
        assert out.std() > 5, name  # a picture, not a flat clip


def test_a1111_pass_loop_repeats_a_2x_model(library, monkeypatch):
    from dreamwire.backend.upscalers import run

    sizes = []
    real = run.model_pass

    def spy(loaded, image, **kw):
        sizes.append(image.shape[:2])
        return real(loaded, image, **kw)

    monkeypatch.setattr(run, "model_pass", spy)
    img = _image(7, 5, seed=2)
    out = upscale(img, "tiny-realesrgan-x2", 5.0, library=library)
    assert out.shape == (35, 25, 3)
    assert sizes == [(7, 5), (14, 10), (28, 20)]  # three passes reach 56x40 >= 35x25
    sizes.clear()
    assert upscale(img, "tiny-realesrgan-x2", 0.5, library=library).shape == (4, 2, 3)
    assert sizes == []  # already big enough: only the Lanczos resize
    # A 1x request still runs the model once (A1111: restoration models).
    assert upscale(img, "tiny-realesrgan-x2", 1, library=library).shape == (7, 5, 3)
    assert sizes == [(7, 5)]


def test_pixel_upscalers_are_pil_resizes():
    img = _image(10, 15, seed=3)
    for name, f in (("Lanczos", Image.LANCZOS), ("Nearest", Image.NEAREST)):
        want = np.asarray(Image.fromarray(img).resize((38, 25), f))
        np.testing.assert_array_equal(upscale(img, name, 2.5), want)


def test_tile_grid_covers_the_image_like_a1111():
    for size, tile, ov in ((200, 192, 8), (500, 192, 8), (1000, 192, 8), (193, 192, 8)):
        starts = tiling.tile_starts(size, tile, ov)
        assert starts[0] == 0 and starts[-1] == size - tile
        assert all(b - a <= tile - ov for a, b in zip(starts, starts[1:], strict=False))
    assert tiling.tile_starts(100, 192, 8) == [0]
    alpha = tiling.ramp(8)
    assert alpha[0] == 0 and 0.8 < alpha[-1] < 1 and np.all(np.diff(alpha) > 0)


def test_tiled_blend_is_exact_for_a_pixelwise_model():
    # A model whose output pixel depends only on its input pixel: whatever the grid, the
    # blend of overlapping tiles must give back the untiled result.
    def model(x):
        return (x**2 + 0.1 * x.flip(1)).repeat_interleave(3, -1).repeat_interleave(3, -2)

    x = torch.rand(1, 3, 70, 95)
    whole = model(x)
    for tile, ov in ((32, 8), (40, 5), (64, 30)):
        tiled = tiling.run_tiled(model, x, 3, tile, ov)
        assert tiled.shape == whole.shape
        assert torch.allclose(tiled, whole, atol=1e-6), (tile, ov)


def test_tiled_model_close_to_untiled_past_one_tile(library):
    img = _image(200, 210, seed=4)
    tiled = upscale(img, "tiny-esrgan-4x", 4, library=library)
    whole = upscale(img, "tiny-esrgan-4x", 4, library=library, tile=0)
    assert tiled.shape == whole.shape == (800, 840, 3)
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 12


def test_cancel_between_tiles(library):
    asked = []

    def cancel():
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(DreamwireError) as err:
        upscale(_image(60, 60), "tiny-esrgan-4x", 4, library=library, tile=32, should_cancel=cancel)
    assert err.value.code == ErrorCode.CANCELLED and len(asked) == 2


def test_a1111_real_esrgan_names_alias_the_released_files(tmp_path, tiny_models):
    folder = tmp_path / "models" / "RealESRGAN"
    folder.mkdir(parents=True)
    shutil.copy(
        tiny_models / "models" / "ESRGAN" / "tiny-realesrgan-x4.safetensors",
        folder / "RealESRGAN_x4plus.safetensors",
    )
    lib = ModelLibrary([tmp_path])
    assert names(lib) == ["Lanczos", "Nearest", "RealESRGAN_x4plus", "R-ESRGAN 4x+"]
    img = _image(8, 8)
    np.testing.assert_array_equal(
        upscale(img, "R-ESRGAN 4x+", 2, library=lib),
        upscale(img, "RealESRGAN_x4plus", 2, library=lib),
    )


# ---- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch, keys",
    [
        (
            "SwinIR",
            [
                "conv_first.weight",
                "patch_embed.norm.weight",
                "conv_after_body.weight",
                "layers.0.residual_group.blocks.0.norm1.weight",
            ],
        ),
        (
            "HAT",
            [
                "conv_first.weight",
                "conv_after_body.weight",
                "layers.0.residual_group.blocks.0.conv_block.cab.0.weight",
            ],
        ),
        (
            "DAT",
            [
                "conv_first.weight",
                "before_RG.1.weight",
                "layers.0.blocks.0.attn.attns.0.proj.weight",
            ],
        ),
    ],
)
def test_other_architectures_are_refused_by_name(tmp_path, arch, keys):
    lib = _root_with(tmp_path, {"4x-Other.safetensors": {k: torch.zeros(4, 4) for k in keys}})
    assert lib.entries("upscaler")[0].arch == arch
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "4x-Other", 4, library=lib)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert f"looks like a {arch} upscaler" in err.value.message


def test_missing_upscaler_names_the_ones_on_offer(library):
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "4x-UltraSharp", 4, library=library)
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "4x-UltraSharp" in err.value.message and "tiny-esrgan-4x" in err.value.message
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "tiny-esrgan-4x", 4)  # no library at all
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    (folder / "4x-evil.pth").write_bytes(pickle.dumps({"params_ema": _Evil(marker)}))
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "4x-evil", 4, library=ModelLibrary([tmp_path]))
    assert err.value.code == ErrorCode.MODEL_UNSAFE
    assert not marker.exists()


# ---- Hires.fix ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(library):
    from dreamwire.backend.engine import Engine

    return Engine(library, device="cpu", extensions=[], cache_size=1)


def _job(**kw) -> Job:
    base = dict(prompt="weathered stone", sampler="Euler", steps=2, width=64, height=48, seed=5)
    base.update(kw)
    return Job(**base)


def test_hires_fix_with_an_upscaler_model(engine, library):
    first = engine.run(_job()).images[0].image
    # Denoise 0: no second-pass step runs, so the result is the upscale itself.
    hires = HiresFix(scale=2.0, denoise=0.0, upscaler="tiny-esrgan-4x")
    result = engine.run(_job(hires=hires)).images[0]
    assert result.image.shape == (96, 128, 3)
    np.testing.assert_array_equal(
        result.image, upscale(first, "tiny-esrgan-4x", 2.0, library=library)
    )
    assert "Hires upscaler: tiny-esrgan-4x" in result.infotext
    assert parse_infotext(result.infotext).hires_upscaler == "tiny-esrgan-4x"
    # With denoising the second pass runs over it.
    denoised = engine.run(
        _job(hires=HiresFix(scale=1.5, denoise=0.5, upscaler="tiny-realesrgan-x2"))
    )
    assert denoised.images[0].image.shape == (72, 96, 3)


def test_hires_fix_refuses_unknown_upscalers_before_running(engine):
    with pytest.raises(DreamwireError) as err:
        engine.run(_job(hires=HiresFix(upscaler="4x-Missing")))
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND and "4x-Missing" in err.value.message
    for bad in ("", "Latent (bicubic)"):
        with pytest.raises(DreamwireError) as err:
            _job(hires=HiresFix(upscaler=bad)).validate()
        assert err.value.code == ErrorCode.INVALID_JOB
