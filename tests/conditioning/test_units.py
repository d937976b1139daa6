"""Special control inputs: inpaint masks, tile, shuffle, and per-unit flags."""

from __future__ import annotations

import numpy as np
import torch
from cn_helpers import BASE, noise_image

from dreamwire.backend.conditioning import control_image, preprocess, units
from dreamwire.backend.conditioning.controlnet_files import ControlNetInfo
from dreamwire.shared.job import ControlUnit, Job


def info(name: str, kind: str) -> ControlNetInfo:
    return ControlNetInfo(name=name, path=None, type=kind, layout="original")  # type: ignore[arg-type]


V11 = {
    "inpaint": "control_v11p_sd15_inpaint",
    "depth": "control_v11f1p_sd15_depth",
    "tile": "control_v11f1e_sd15_tile",
}


def control_tensor(kind: str, image: np.ndarray, job: Job | None = None, size: int = 64, **kw):
    """`units.control_tensor` for a unit of `kind` on the v1.1 ControlNet of that kind."""
    unit = ControlUnit(type=kind, image=image)
    job = job or Job(**BASE)
    return units.control_tensor(unit, job, size, size, info(V11[kind], kind), **kw)


def test_inpaint_uses_the_job_mask():
    src = noise_image(1)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:24, 8:40] = 255
    job = Job(**BASE, init_image=src, mask=mask)
    t = control_tensor("inpaint", src, job)
    assert (t[0, :, 8:24, 8:40] == -1).all()
    outside = torch.from_numpy(src).permute(2, 0, 1).float() / 255
    keep = torch.from_numpy(mask == 0)
    assert torch.equal(t[0][:, keep], outside[:, keep])


def test_inpaint_takes_the_alpha_channel_when_the_job_has_no_mask():
    rgba = np.dstack([noise_image(2), np.zeros((64, 64), np.uint8)])
    rgba[40:, :, 3] = 255  # bottom strip: repaint
    t = control_tensor("inpaint", rgba, size=32)
    assert t.shape == (1, 3, 32, 32)
    assert (t[0, :, 20:] == -1).all() and (t[0, :, :20] >= 0).all()


def test_other_types_drop_alpha():
    rgba = np.dstack([noise_image(3), np.full((64, 64), 255, np.uint8)])
    t = control_tensor("depth", rgba)
    assert (t >= 0).all()


def test_shuffle_preprocessor_is_seeded_by_the_job():
    ref = noise_image(4)
    unit = ControlUnit(type="shuffle", image=ref, preprocessor="shuffle")
    i = info("control_v11e_sd15_shuffle", "shuffle")
    a = units.control_tensor(unit, Job(**{**BASE, "seed": 5}), 64, 64, i)
    b = units.control_tensor(unit, Job(**{**BASE, "seed": 5}), 64, 64, i)
    c = units.control_tensor(unit, Job(**{**BASE, "seed": 6}), 64, 64, i)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Shuffled at the extension's fixed 512, then fitted to the pass.
    shuffled = preprocess.run("shuffle", ref, seed=5)
    assert min(shuffled.shape[:2]) == 512
    fitted = control_image.resize(shuffled, 64, 64, "crop_and_resize")
    expected = torch.from_numpy(fitted).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(a, expected)
    assert units.stack_unit(unit, i, hires_pass=False).pool  # v11e shuffle pools globally


def test_tile_gets_the_low_resolution_source_enlarged():
    small = noise_image(5, h=32, w=32)
    t = control_tensor("tile", small)
    assert t.shape == (1, 3, 64, 64)
    # blocky 4x4 source (8 px blocks at 32 px) enlarged x2: still blocks of one colour
    assert torch.equal(t[0, :, 0, 0], t[0, :, 15, 15])


def test_hires_forces_soft_injection_for_canny_and_mlsd_only():
    unit = ControlUnit(type="canny", image=noise_image(6))
    assert units.stack_unit(unit, info("control_v11p_sd15_canny", "canny"), hires_pass=True).soft
    assert not units.stack_unit(
        unit, info("control_v11p_sd15_canny", "canny"), hires_pass=False
    ).soft
    depth = ControlUnit(type="depth", image=noise_image(6))
    assert not units.stack_unit(
        depth, info("control_v11f1p_sd15_depth", "depth"), hires_pass=True
    ).soft


def test_only_masked_inpaint_crops_the_control_image_to_the_region():
    ctl = noise_image(7, h=64, w=64)
    box = (16, 8, 48, 40)  # a 32 x 32 region of the 64 x 64 canvas
    t = control_tensor("depth", ctl, region=(box, (64, 64)))
    crop = ctl[8:40, 16:48].repeat(2, axis=0).repeat(2, axis=1)  # blocky: x2 is exact
    expected = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(t, expected)


def test_only_masked_inpaint_with_controlnet_runs(engine):
    init = noise_image(8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:36, 20:36] = 255
    job = Job(
        **{**BASE, "sampler": "Euler"},
        init_image=init,
        mask=mask,
        inpaint_full_res=True,
        inpaint_padding=8,
        controls=[ControlUnit(type="depth", image=noise_image(9))],
    )
    out = engine.run(job).images[0].image
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[:8, :8], init[:8, :8])  # far from the mask: untouched
    assert np.abs(out[22:34, 22:34].astype(int) - init[22:34, 22:34]).max() > 0
