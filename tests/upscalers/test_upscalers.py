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
from dreamwire.backend.library.upscaler_layout import UpscalerKind, kind_of
from dreamwire.backend.tiny import upscalers as tiny
from dreamwire.backend.upscalers import loading, names, tiling, upscale
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import HiresFix, Job


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _root_with(tmp_path, files: dict[str, dict[str, torch.Tensor]]) -> ModelLibrary:
    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensors in files.items():
        save_file(tensors, str(folder / name))
    return ModelLibrary([tmp_path])


def _run(descriptor, x: torch.Tensor) -> torch.Tensor:
    """The bare network's output (spandrel's descriptor would clamp it to [0, 1])."""
    with torch.no_grad():
        return descriptor.model(x)


# ---- key layouts -------------------------------------------------------------------------


def test_old_and_new_layouts_load_the_same_network():
    new = tiny.esrgan(noise=0.3)
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
    x = torch.rand(1, 3, 9, 7)
    want = None
    for state in (old, new, wrapped, bsrgan):
        model = loading.build(loading.unwrap(state) if state is wrapped else state)
        assert (model.architecture.name, model.scale) == ("ESRGAN", 4)
        out = _run(model, x)
        want = out if want is None else want
        assert out.shape == (1, 3, 36, 28) and torch.equal(out, want)


def test_scale_and_unshuffle_are_read_from_the_keys():
    def kind(state):
        return kind_of({k: list(v.shape) for k, v in state.items()})

    assert loading.build(tiny.esrgan(unshuffle=2)).scale == 2  # Real-ESRGAN x2plus
    assert loading.build(tiny.esrgan(unshuffle=4)).scale == 1
    # An old-layout 2x ESRGAN: one upsample, hr at model.5, last at model.7.
    old2 = tiny.to_old_layout(tiny.esrgan(upsamples=1), upsamples=1)
    assert "model.7.weight" in old2 and "model.6.weight" not in old2
    assert loading.build(old2).scale == 2
    compact = loading.build(tiny.compact())
    assert (compact.architecture.name, compact.scale) == ("RealESRGAN Compact", 4)
    # The library's label comes from the header's shapes alone (meta tensors).
    assert kind(tiny.esrgan(unshuffle=2)) == UpscalerKind("ESRGAN", 2)
    assert kind(old2).label == "ESRGAN 2x" and kind(tiny.compact()).label == "RealESRGAN Compact 4x"
    assert kind({"foo.weight": torch.zeros(3, 3)}) == UpscalerKind("unknown", runnable=False)


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


def _randomised(state: dict, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in state.items()}


def test_forward_matches_a_plain_reference():
    # Every weight random, the identity path included. These equal, to float rounding, the
    # hand-written RRDBNet / SRVGGNet Dreamwire ran before spandrel (checked on every tiny
    # file when the two were swapped: max difference 0 after the [0, 1] clamp).
    sd = tiny.to_old_layout(_randomised(tiny.esrgan(), 1), 2)
    x = torch.rand(1, 3, 9, 7)
    out = _run(loading.build(sd), x)
    assert out.shape == (1, 3, 36, 28)
    assert torch.allclose(out, _reference_rrdbnet(x, sd, tiny.BLOCKS, 2), atol=1e-5)
    # Real-ESRGAN x2: the same body over the 2x2 pixel-unshuffled input. spandrel reflect-
    # pads such a model's input to a multiple of 4 (A1111 1.9+ runs spandrel, so A1111 does
    # too); on a side that is one already, nothing is padded.
    sd2 = tiny.to_old_layout(_randomised(tiny.esrgan(unshuffle=2), 2), 2)
    x2 = torch.rand(1, 3, 8, 12)
    ref2 = _reference_rrdbnet(F.pixel_unshuffle(x2, 2), sd2, tiny.BLOCKS, 2)
    assert torch.allclose(_run(loading.build(sd2), x2), ref2, atol=1e-5)
    # Compact: convs with PReLUs, pixel-shuffle, plus the nearest-upsampled input.
    sdc = tiny.compact()
    h = x
    convs = sorted(int(k.split(".")[1]) for k in sdc if k.endswith(".bias"))
    for i in convs[:-1]:
        h = F.conv2d(h, sdc[f"body.{i}.weight"], sdc[f"body.{i}.bias"], padding=1)
        h = F.prelu(h, sdc[f"body.{i + 1}.weight"])
    last = convs[-1]
    h = F.conv2d(h, sdc[f"body.{last}.weight"], sdc[f"body.{last}.bias"], padding=1)
    refc = F.pixel_shuffle(h, 4) + x.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert torch.allclose(_run(loading.build(sdc), x), refc, atol=1e-5)


def test_identity_weights_give_nearest_neighbour_in_a1111_bgr_order(tmp_path):
    # conv_first/up/hr carry channel c, conv_last routes feature (c + 1) % 3 to output c: a
    # channel rotation that shows which order the pixels reach the model in.
    state = tiny.esrgan(noise=0.0)
    state["conv_last.weight"].zero_()
    for c in range(3):
        state["conv_last.weight"][c, (c + 1) % 3, 1, 1] = 1.0
    lib = _root_with(tmp_path, {"ident.safetensors": tiny.to_old_layout(state, 2)})
    img = _image(10, 13)
    nearest = img.repeat(4, 0).repeat(4, 1)
    # A1111 feeds BGR: the model sees [B, G, R], returns [G, R, B], read back as BGR.
    bgr = upscale(img, "ident", 4, library=lib)
    np.testing.assert_array_equal(bgr, nearest[..., [2, 0, 1]])
    # ComfyUI / Krita AI Diffusion (spandrel's convention) feed RGB: [R, G, B] -> [G, B, R].
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
    assert archs["tiny-realesrgan-x2"] == "ESRGAN 2x"
    assert archs["tiny-compact-x4"] == "RealESRGAN Compact 4x"
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
    # Tiles of 48 px (A1111's 192 default at a quarter of the cost): 3 x 3 tiles here.
    img = _image(100, 110, seed=4)
    tiled = upscale(img, "tiny-esrgan-4x", 4, library=library, tile=48)
    whole = upscale(img, "tiny-esrgan-4x", 4, library=library, tile=0)
    assert tiled.shape == whole.shape == (400, 440, 3)
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


def test_unknown_layouts_and_non_rgb_models_are_refused(tmp_path):
    from spandrel.architectures.Compact import Compact

    gray = Compact(num_in_ch=1, num_out_ch=1, num_feat=4, num_conv=1, upscale=2)
    other = {"m_head.weight": torch.zeros(4, 4), "decoder.1.bias": torch.zeros(4)}
    lib = _root_with(
        tmp_path,
        {
            "4x-Other.safetensors": other,
            "2x-Gray.safetensors": {k: v.contiguous() for k, v in gray.state_dict().items()},
        },
    )
    labels = {e.name: e.arch for e in lib.entries("upscaler")}
    assert labels == {"4x-Other": "unknown", "2x-Gray": "RealESRGAN Compact 2x"}
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "4x-Other", 4, library=lib)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "4x-Other.safetensors is not an upscaler architecture" in err.value.message
    with pytest.raises(DreamwireError) as err:
        upscale(_image(8, 8), "2x-Gray", 2, library=lib)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "RealESRGAN Compact model (SR, 1 -> 1 channels)" in err.value.message


# ---- spandrel's other architectures ------------------------------------------------------


@pytest.fixture(scope="module")
def other_archs(tmp_path_factory):
    """Tiny SPAN, OmniSR, DAT and SwinIR files (spandrel's own classes, real key layouts)
    in a library's models/upscale_models, as ComfyUI keeps them."""
    root = tmp_path_factory.mktemp("archs")
    folder = root / "models" / "upscale_models"
    folder.mkdir(parents=True)
    states = tiny.other_archs()
    for name, state in states.items():
        save_file(state, str(folder / f"{name}.safetensors"))
    return ModelLibrary([root]), states


def _spandrel_reference(state: dict, img: np.ndarray, flip: bool) -> np.ndarray:
    """spandrel's own loader and call on the image, channels flipped in and out or not."""
    from spandrel import ModelLoader

    model = ModelLoader().load_from_state_dict(state).eval()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = model(x.flip(1) if flip else x)
    out = out.flip(1) if flip else out
    return (out[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def test_spandrel_architectures_run_as_spandrel_runs_them(other_archs):
    lib, states = other_archs
    labels = {e.name: e.arch for e in lib.entries("upscaler")}
    # The header-only label has the factor where spandrel's loader reads shapes alone.
    assert labels == {
        "tiny-span-x4": "SPAN 4x",
        "tiny-omnisr-x2": "OmniSR 2x",
        "tiny-dat-x2": "DAT",
        "tiny-swinir-x2": "SwinIR",
    }
    img = _image(18, 20, seed=6)
    for name, state in states.items():
        scale = 4 if name.endswith("x4") else 2
        rgb = upscale(img, name, scale, library=lib, bgr=False, tile=0)
        assert rgb.shape == (18 * scale, 20 * scale, 3), name
        want = _spandrel_reference(state, img, flip=False)
        assert np.abs(rgb.astype(int) - want).max() <= 1, name
        # A1111's order: BGR in, the output flipped back; a random net tells them apart.
        bgr = upscale(img, name, scale, library=lib, tile=0)
        assert np.abs(bgr.astype(int) - _spandrel_reference(state, img, flip=True)).max() <= 1
        assert np.abs(bgr.astype(int) - rgb).mean() > 0.5, name


def test_spandrel_never_opens_a_pth_itself(library, monkeypatch):
    # A .pth reaches spandrel only as the tensors Dreamwire's weights-only unpickler read.
    from spandrel import ModelLoader

    def refuse(*_a, **_k):
        raise AssertionError("spandrel opened the file")

    for method in ("load_from_file", "load_state_dict_from_file", "_load_pth"):
        monkeypatch.setattr(ModelLoader, method, refuse)
    loading.clear_cache()
    out = upscale(_image(8, 8), "tiny-realesrgan-x4-ema", 4, library=library)
    assert out.shape == (32, 32, 3)


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
