"""Preprocessors run at the unit's detect resolution as sd-webui-controlnet runs them: the
picture resized to `processor_res` on its shorter side and edge-padded to 64s
(resize_image_with_pad), the map cut back, 512 by default; the infotext records it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dreamwire.backend.conditioning import detect_resolution, preprocess, unit_infotext
from dreamwire.backend.conditioning.controlnet_files import ControlNetInfo
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext_controlnet import parse_entry
from dreamwire.shared.job import ControlUnit, Job


def extension_resize_image_with_pad(img, resolution):
    """sd-webui-controlnet scripts/utils.py resize_image_with_pad, as released (the
    reference the rule is checked against)."""
    H_raw, W_raw, _ = img.shape
    k = float(resolution) / float(min(H_raw, W_raw))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    H_target = int(np.round(float(H_raw) * k))
    W_target = int(np.round(float(W_raw) * k))
    img = cv2.resize(img, (W_target, H_target), interpolation=interpolation)

    def pad64(x):
        return int(np.ceil(float(x) / 64.0) * 64 - x)

    H_pad, W_pad = pad64(H_target), pad64(W_target)
    img_padded = np.pad(img, [[0, H_pad], [0, W_pad], [0, 0]], mode="edge")

    def remove_pad(x):
        return np.ascontiguousarray(x[:H_target, :W_target])

    return np.ascontiguousarray(img_padded), remove_pad


def xdog(img: np.ndarray) -> np.ndarray:
    """PreprocessorScribbleXdog's lines at threshold 32."""
    g1 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    out = np.zeros_like(img)
    out[2 * (255 - dog) > 32] = 255
    return out


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 220, np.uint8)
    for _ in range(4):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), max(2, min(h, w) // 5), rng.integers(0, 120, 3).tolist(), 2)
    return img


@pytest.mark.parametrize(
    ("h", "w", "res", "size", "padded"),
    [
        (10, 25, 65, (65, 162), (128, 192)),  # 162.5: numpy rounds half to even
        (37, 53, 64, (64, 92), (64, 128)),  # enlarged (cubic)
        (100, 150, 64, (64, 96), (64, 128)),  # shrunk (area)
        (96, 64, 80, (120, 80), (128, 128)),  # portrait: the width is the shorter side
    ],
)
def test_resize_with_pad_is_the_extensions(h, w, res, size, padded):
    img = picture(h, w)
    got, cut = detect_resolution.resize_with_pad(img, res)
    want, remove_pad = extension_resize_image_with_pad(img, res)
    assert (cut, got.shape[:2]) == (size, padded)
    np.testing.assert_array_equal(got, want)
    assert remove_pad(want).shape[:2] == size


def test_model_free_preprocessors_run_on_the_padded_picture():
    img = picture(40, 70, seed=1)
    padded, remove_pad = extension_resize_image_with_pad(img, 96)
    # PreprocessorCanny: cv2.Canny on the padded picture, the pad cut off.
    want = remove_pad(cv2.cvtColor(cv2.Canny(padded, 100, 200), cv2.COLOR_GRAY2RGB))
    got = preprocess.run("canny", img, processor_res=96)
    assert got.shape == (96, 168, 3)
    np.testing.assert_array_equal(got, want)
    # scribble_xdog likewise (its Gaussian blurs reflect at the border: the pad matters).
    got = preprocess.run("scribble_xdog", img, processor_res=96)
    np.testing.assert_array_equal(got, remove_pad(xdog(padded)))
    assert not np.array_equal(got, xdog(remove_pad(padded)))


def test_defaults_fixed_and_unresized_preprocessors():
    img = picture(40, 70, seed=2)
    # -1 (and what the extension resets: out of 64..2048) is 512.
    for res in (-1, 0, 32, 4096):
        assert preprocess.run("lineart_standard", img, processor_res=res).shape == (512, 896, 3)
    # shuffle always detects at 512: its hidden slider makes the extension reset any value.
    assert preprocess.run("shuffle", img, processor_res=128, seed=1).shape == (512, 896, 3)
    # invert and tile_resample take no resolution: the picture's own size.
    np.testing.assert_array_equal(preprocess.run("invert", img, processor_res=128), 255 - img)
    assert preprocess.run("tile_resample", img, processor_res=128).shape == img.shape
    # t2ia_color_grid resizes itself: shortest edge to the resolution, 64 px cells.
    grid = preprocess.run("t2ia_color_grid", img, processor_res=128)
    assert grid.shape == (128, 224, 3) and np.array_equal(
        grid[:64, :64], grid[:1, :1] * np.ones((64, 64, 1), np.uint8)
    )


def test_infotext_records_the_resolution_and_pastes_it_back(tmp_path):
    weights = tmp_path / "control_v11p_sd15_canny.safetensors"
    weights.write_bytes(b"\0" * 64)
    info = ControlNetInfo("control_v11p_sd15_canny", weights, "canny", layout="original")
    cases = [("canny", -1, 512), ("canny", 768, 768), ("none", -1, 512), ("shuffle", 1024, 512)]
    for module, res, recorded in cases:
        unit = ControlUnit(type="canny", image=None, preprocessor=module, processor_res=res)
        entry = unit_infotext.entry(unit, info)
        assert entry.processor_res == recorded
        back = parse_entry(entry.to_text()).control_unit()
        assert back.processor_res == (recorded if recorded != 512 else -1)


def test_the_wire_carries_processor_res_only_when_set():
    unit = ControlUnit(type="canny", image=np.zeros((8, 8, 3), np.uint8), preprocessor="canny")
    job = Job(prompt="x", width=64, height=64, controls=[unit])
    body, _ = job.to_wire()
    assert "processor_res" not in body["controls"][0]  # a backend from before reads it
    unit.processor_res = 640
    body, arrays = job.to_wire()
    assert body["controls"][0]["processor_res"] == 640
    assert Job.from_wire(body, arrays).controls[0].processor_res == 640
    for bad in (63, 2049, 512.0, True):
        unit.processor_res = bad
        with pytest.raises(DreamwireError) as err:
            job.validate()
        assert err.value.code is ErrorCode.INVALID_JOB
        assert "controls[0].processor_res" in err.value.message
