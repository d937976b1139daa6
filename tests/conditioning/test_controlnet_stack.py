"""The stack's arithmetic per control mode, against the A1111 extension's definitions, and
the ControlNet files' identification and original layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cn_helpers import load_net, noise_image
from safetensors import safe_open

from dreamwire import catalog
from dreamwire.backend.conditioning import control_image, controlnet_files, files
from dreamwire.backend.conditioning.controlnet import ControlNetStack, StackUnit
from dreamwire.shared.errors import DreamwireError, ErrorCode


@pytest.fixture(scope="module")
def canny(engine, cn_dir):
    return load_net(engine, cn_dir / "control_v11p_sd15_canny.safetensors")


def _inputs():
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=g)  # [uncond, cond]
    context = torch.randn(2, 77, 32, generator=g)
    hint = (
        torch.from_numpy(noise_image(1)).permute(2, 0, 1)[None].float().div(255).repeat(2, 1, 1, 1)
    )
    return sample, context, hint


def _raw(net, sample, context, hint):
    d, m = net(sample, torch.tensor(500), context, hint, conditioning_scale=1.0, return_dict=False)
    return [*d, m]


def _stack(net, **unit):
    return ControlNetStack([net], [StackUnit(**unit)], cfg=True)


def test_balanced_is_weight_times_residual_on_both_halves(canny):
    sample, context, hint = _inputs()
    raw = _raw(canny, sample, context, hint)
    d, m = _stack(canny, weight=0.6)(sample, torch.tensor(500), context, [hint], [1.0])
    for got, r in zip([*d, m], raw, strict=True):
        torch.testing.assert_close(got, r * 0.6)


@pytest.mark.parametrize("mode", ["prompt", "controlnet"])
def test_soft_modes_scale_by_0825_powers(canny, mode):
    sample, context, hint = _inputs()
    raw = _raw(canny, sample, context, hint)
    d, m = _stack(canny, weight=0.9, mode=mode)(sample, torch.tensor(500), context, [hint], [1.0])
    got = [*d, m]
    for k, (g, r) in enumerate(zip(got, raw, strict=True)):
        # hook.py: [weight * 0.825 ** (12 - i) for i in range(13)], zipped with the residuals
        expected = r * (0.9 * 0.825 ** (12 - k))
        if mode == "controlnet":  # cfg injection: the unconditional half gets nothing
            assert torch.count_nonzero(g[:1]) == 0
            torch.testing.assert_close(g[1:], expected[1:])
        else:
            torch.testing.assert_close(g, expected)
    assert torch.allclose(got[0][1:], raw[0][1:] * 0.9 * 0.825**12)  # first: ~0.1 w


def test_pooled_shuffle_unit(canny):
    sample, context, hint = _inputs()
    raw = _raw(canny, sample, context, hint)
    d, m = _stack(canny, pool=True)(sample, torch.tensor(500), context, [hint], [1.0])
    for g, r in zip([*d, m], raw, strict=True):
        assert g.shape == r.shape
        torch.testing.assert_close(g[1:], r[1:].mean(dim=(2, 3), keepdim=True).expand_as(r[1:]))
        assert torch.count_nonzero(g[:1]) == 0


def test_window_by_call_count_without_engine(canny):
    sample, context, hint = _inputs()
    ran: list[list[bool]] = []
    stack = ControlNetStack([canny], [StackUnit(start=0.25, end=0.5)], cfg=True, on_ran=ran.append)
    stack.clock.total = 4
    outs = [stack(sample, torch.tensor(500), context, [hint], [1.0]) for _ in range(4)]
    assert ran == [[False], [True], [True], [False]]
    assert outs[0] == (None, None)


def test_tiny_controlnet_files_are_in_the_original_layout(cn_dir, canny):
    path = cn_dir / "control_v11p_sd15_canny.safetensors"
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert all(k.startswith("control_model.") for k in keys)
    for key in (
        "input_hint_block.14.weight",
        "zero_convs.0.0.weight",
        "middle_block_out.0.weight",
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "time_embed.0.weight",
    ):
        assert "control_model." + key in keys
    # diffusers' own single-file converter reads every tensor back
    assert sum(p.numel() for p in canny.parameters()) == sum(
        int(np.prod(s)) for s in files.shapes(path).values()
    )


@pytest.mark.parametrize(
    ("name", "kind", "family"),
    [
        ("control_v11p_sd15_canny", "canny", "SD1.x"),
        ("control_v11f1p_sd15_depth", "depth", "SD1.x"),
        ("control_v11p_sd15s2_lineart_anime", "lineart_anime", "SD1.x"),
        ("control_v11p_sd15_lineart", "lineart", "SD1.x"),
        ("control_v11p_sd15_softedge", "softedge", "SD1.x"),
        ("control_sd15_hed", "softedge", "SD1.x"),
        ("control_v11p_sd15_normalbae", "normalbae", "SD1.x"),
        ("control_v11p_sd15_seg", "seg", "SD1.x"),
        ("control_v11e_sd15_ip2p", "ip2p", "SD1.x"),
        ("control_v11f1e_sd15_tile", "tile", "SD1.x"),
        ("control_v11e_sd15_shuffle", "shuffle", "SD1.x"),
        ("control_v11p_sd15_inpaint", "inpaint", "SD1.x"),
        ("control_v11p_sd15_mlsd", "mlsd", "SD1.x"),
        ("control_v11p_sd15_scribble", "scribble", "SD1.x"),
        ("control_v11p_sd15_openpose", "openpose", "SD1.x"),
        ("t2iadapter_depth_sd15v2", "depth", "SD1.x"),
        ("diffusers_xl_canny_full", "canny", "SDXL"),
        ("thibaud_xl_openpose", "openpose", "SDXL"),
        ("controlnet-depth-sdxl-1.0", "depth", "SDXL"),
        ("control_v11p_sd21_normalbae", "normalbae", "SD2.x"),
        # CrucibleAI's ControlNetMediaPipeFace: "mediapipe", not "face", names it; the
        # IP-Adapter FaceID files hold "face" too and stay IP-Adapters.
        ("control_v2p_sd15_mediapipe_face", "mediapipe_face", "SD1.x"),
        ("control_v2p_sd21_mediapipe_face", "mediapipe_face", "SD2.x"),
        ("ControlNetMediaPipeFace", "mediapipe_face", None),
        ("ip-adapter-faceid-plusv2_sd15", "ip-adapter", "SD1.x"),
        ("ip-adapter-plus-face_sdxl_vit-h", "ip-adapter", "SDXL"),
    ],
)
def test_type_and_family_from_name(name, kind, family):
    assert controlnet_files.type_from_name(name) == kind
    assert controlnet_files.family_from_name(name) == family


def test_unsupported_layouts_are_named(tmp_path):
    from safetensors.torch import save_file

    # T2I-Adapters run (test_t2i_adapter.py); the style adapter (CLIP-vision input) does not.
    adapter = tmp_path / "t2iadapter_style_sd14v1.safetensors"
    save_file({"style_embedding": torch.zeros(1, 8, 4)}, str(adapter))
    info = controlnet_files.inspect(adapter)
    with pytest.raises(DreamwireError) as err:
        controlnet_files.check_supported(info)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "T2I-Adapter" in err.value.message


def test_header_architecture(cn_dir):
    sd1 = json.loads((catalog.config_dir("tiny-sd1") / "unet" / "config.json").read_text())
    xl = controlnet_files.inspect(cn_dir / "diffusers_xl_depth_full.safetensors")
    assert xl.layout == "diffusers" and xl.sdxl and xl.context_dim == 96
    with pytest.raises(DreamwireError) as err:
        controlnet_files.check_compatible(xl, sd1, "tiny-sd1", "sd1")
    assert err.value.code == ErrorCode.MODEL_MISMATCH


def test_resize_modes():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 30:50] = 255  # a white bar in the middle, on black
    img[:, :5] = 100
    crop = control_image.resize(img, 40, 40, "crop_and_resize")
    assert crop.shape == (40, 40, 3)
    assert crop[:, 15:25].min() == 255 and crop[:, 0].max() == 0  # centre kept, sides cut
    stretch = control_image.resize(img, 40, 40, "just_resize")
    assert stretch.shape == (40, 40, 3) and stretch[:, 0].max() == 100  # nothing cut
    fill = control_image.resize(img, 40, 40, "resize_and_fill")
    assert fill.shape == (40, 40, 3)
    assert (fill[:10] == 0).all() and (fill[-10:] == 0).all()  # padded with the border median
    assert fill[10:30, 0].max() == 100  # the whole width is inside


def test_channels():
    depth = np.array([[0.0, 0.5], [1.0, 2.0]], np.float32)
    rgb, alpha = control_image.split_channels(np.tile(depth, (4, 4)))
    assert rgb.shape == (8, 8, 3) and alpha is None
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [128, 128, 128]
    assert rgb[1, 1].tolist() == [255, 255, 255]  # clipped
    grey = control_image.split_channels(np.full((8, 8, 1), 7, np.uint8))[0]
    assert grey.shape == (8, 8, 3) and (grey == 7).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 200
    rgb, alpha = control_image.split_channels(rgba)
    assert rgb.shape == (8, 8, 3) and (alpha == 200).all()
    with pytest.raises(DreamwireError) as err:
        control_image.split_channels(np.zeros((8, 8, 2), np.uint8))
    assert err.value.code == ErrorCode.INVALID_IMAGE


def test_inpaint_tensor_marks_masked_pixels_minus_one():
    rgb = np.full((8, 8, 3), 255, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 255
    t = control_image.to_tensor(rgb, mask)
    assert (t[0, :, 2:4, 2:4] == -1).all() and (t[0, :, 5:, 5:] == 1).all()
    assert int((t == -1).sum()) == 4 * 3


def test_pickled_controlnet_pth_loads_through_the_restricted_unpickler(
    engine, cn_dir, canny, tmp_path
):
    from safetensors.torch import load_file

    pth = tmp_path / "control_v11p_sd15_canny.pth"
    torch.save(load_file(str(cn_dir / "control_v11p_sd15_canny.safetensors")), pth)
    info = controlnet_files.inspect(pth)
    assert info.pickled and info.layout == "original" and info.type == "canny"
    net = load_net(engine, pth)
    ref = canny.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items())


def test_old_diffusers_lora_names(tmp_path, engine):
    from safetensors.torch import save_file

    from dreamwire.backend.conditioning import lora

    comps = engine.load("tiny-sd1").components
    attn = comps["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1
    before = attn.to_out[0].weight.detach().clone()
    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora"
    path = tmp_path / "old.safetensors"
    save_file(
        {f"{key}.down.weight": torch.ones(1, 32), f"{key}.up.weight": torch.ones(32, 1)}, str(path)
    )
    patch = lora.apply([(lora.read(path), 0.5, 0.5)], comps)
    try:
        torch.testing.assert_close(attn.to_out[0].weight.detach(), before + 0.5)
    finally:
        patch.restore()
