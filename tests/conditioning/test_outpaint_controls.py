"""ControlNet units on an outpainted canvas: unit images made for the picture stay pixel
aligned with it (padded with each type's empty value, the inpaint border masked, the
picture-reading types given the grown canvas), units without an image take the grown
picture, and other jobs are unchanged. The control images are read where the pipeline hands
them to the ControlNets (ControlNetStack.forward), next to the picture the pass starts from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cn_helpers import BASE, noise_image

from dreamwire.backend.canvas import masks, outpaint
from dreamwire.backend.conditioning import control_image, on_canvas, preprocess, units
from dreamwire.backend.conditioning.controlnet import ControlNetStack
from dreamwire.backend.conditioning.controlnet_files import ControlNetInfo
from dreamwire.backend.engine import masked_content
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import CONTROL_TYPES, ControlUnit, Job, Outpaint

GREY, WHITE = 60, 255


@pytest.fixture
def seen(monkeypatch):
    """What one run hands over: the control images of the first ControlNet call (one per
    unit, the unconditional half of the CFG batch) and the picture the pass starts from."""
    seen: dict = {"controls": None, "picture": None}
    forward, prepare = ControlNetStack.forward, masked_content.prepare_pixels

    def spy_forward(self, *args, **kwargs):
        cond = kwargs["controlnet_cond"] if "controlnet_cond" in kwargs else args[3]
        if seen["controls"] is None:
            seen["controls"] = [c[0].detach().float().clone() for c in cond]
        return forward(self, *args, **kwargs)

    def spy_prepare(fill, image, mask, *wrap):
        seen["picture"] = image.copy()
        return prepare(fill, image, mask, *wrap)

    monkeypatch.setattr(ControlNetStack, "forward", spy_forward)
    monkeypatch.setattr(masked_content, "prepare_pixels", spy_prepare)
    return seen


def marked(h: int, w: int, box: tuple[int, int, int, int], bg: int = 0) -> np.ndarray:
    """An h x w RGB image of `bg` with a white marker block at box (top, bottom, left, right)."""
    img = np.full((h, w, 3), bg, np.uint8)
    t, b, left, r = box
    img[t:b, left:r] = WHITE
    return img


def tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255


def job(**kw) -> Job:
    return Job(**{**BASE, "sampler": "Euler", "mask_blur": 0, **kw})


def centroid(on: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(on)
    return np.array([ys.mean(), xs.mean()])


BOX = (8, 16, 24, 32)  # the marker in the 64 x 64 picture
BORDER = Outpaint(left=16, top=8)  # canvas 80 x 72: no resize, no rounding


def test_outpaint_aligns_each_type_with_the_picture(engine, seen):
    init = marked(64, 64, BOX, bg=GREY)
    depth = marked(64, 64, BOX)  # near object where the picture has its marker
    normals = np.full((64, 64, 3), (200, 90, 40), np.uint8)
    seg_other_size = noise_image(3, h=48, w=64)  # not the picture's size: resized as before
    controls = [
        ControlUnit(type="depth", image=depth),
        ControlUnit(type="normalbae", image=normals),
        ControlUnit(type="inpaint", image=init),
        ControlUnit(type="tile", image=init),
        ControlUnit(type="canny", image=None, preprocessor="canny"),
        ControlUnit(type="seg", image=seg_other_size),
    ]
    engine.run(job(init_image=init, outpaint=BORDER, strength=1.0, controls=controls))
    picture, got = seen["picture"], seen["controls"]
    assert picture.shape == (72, 80, 3)
    canvas_marker = np.zeros((72, 80), bool)
    canvas_marker[8 + 8 : 8 + 16, 16 + 24 : 16 + 32] = True
    assert np.array_equal((picture == WHITE).all(axis=2), canvas_marker)
    inside = np.zeros((72, 80), bool)
    inside[8:, 16:] = True

    d, n, inp, tile, canny, seg = got
    # depth: the marker lands on the picture's marker; the border is 0 (far, no signal).
    assert torch.equal(d, tensor(outpaint.pad(depth, BORDER, 0)))
    assert np.array_equal((d == 1).all(0).numpy(), canvas_marker)
    # normalbae: the border is a flat surface facing the camera.
    facing = torch.tensor([127.0, 127.0, 255.0])[:, None] / 255
    assert (n[:, ~torch.from_numpy(inside)] == facing).all()
    assert torch.equal(n[:, 8:, 16:], tensor(normals))
    # inpaint: the picture inside, the grown border masked (-1), as A1111's inpaint_only.
    assert torch.equal(inp[:, 8:, 16:], tensor(init))
    assert (inp[:, ~torch.from_numpy(inside)] == -1).all()
    # tile is given the grown canvas the sampler starts from; canny runs on it (at the
    # default detect resolution, 512, and is resized back as the picture is).
    assert torch.equal(tile, tensor(picture))
    edges = control_image.resize(preprocess.run("canny", picture), 80, 72, "just_resize")
    assert torch.equal(canny, tensor(edges))
    # another size keeps today's resize policy (crop_and_resize to the canvas).
    assert torch.equal(seg, tensor(control_image.resize(seg_other_size, 80, 72, "crop_and_resize")))


def test_marker_follows_the_picture_through_resize_and_rounding(engine, seen):
    """Init 32 x 32 generated at 64 x 64 with 20 px grown on the right: the canvas is 84 x 64,
    stretched to the pass's 88 x 64. The control map takes the same path."""
    box = (12, 16, 4, 8)
    init = marked(32, 32, box, bg=GREY)
    unit = ControlUnit(type="scribble", image=marked(32, 32, box), resize_mode="resize_and_fill")
    engine.run(job(init_image=init, outpaint=Outpaint(right=20), controls=[unit]))
    picture, (ctl,) = seen["picture"], seen["controls"]
    assert picture.shape == (64, 88, 3) and ctl.shape == (3, 64, 88)
    in_picture = picture.mean(axis=2) > 160
    in_control = ctl.mean(0).numpy() > 0.5
    assert np.abs(centroid(in_picture) - centroid(in_control)).max() <= 0.75
    assert abs(int(in_picture.sum()) - int(in_control.sum())) <= 8
    assert not in_control[:, 66:].any()  # the grown strip (x >= 64 * 88/84) holds no lines


def test_canvas_sized_marker_follows_the_picture_through_rounding(engine, seen):
    """A unit image the size of the grown canvas (a Krita control layer) goes to the pass
    size exactly as the picture does, whatever its resize mode: the 68 x 64 canvas is
    stretched to 72 x 64, where crop_and_resize would scale both ways and crop 2 rows."""
    border = Outpaint(left=4)
    init = marked(64, 64, BOX, bg=GREY)
    t, b, left, r = BOX
    depth = marked(64, 68, (t, b, left + 4, r + 4))  # the marker where the picture has it
    unit = ControlUnit(type="depth", image=depth)  # default resize mode: crop_and_resize
    engine.run(job(init_image=init, outpaint=border, controls=[unit]))
    picture, (ctl,) = seen["picture"], seen["controls"]
    assert picture.shape == (64, 72, 3) and ctl.shape == (3, 64, 72)
    assert torch.equal(ctl, tensor(control_image.resize(depth, 72, 64, "just_resize")))
    in_picture = picture.mean(axis=2) > 160
    in_control = ctl.mean(0).numpy() > 0.5
    assert np.abs(centroid(in_picture) - centroid(in_control)).max() <= 0.25
    assert abs(int(in_picture.sum()) - int(in_control.sum())) <= 8


def test_canvas_sized_inpaint_unit_takes_the_grown_mask(engine, seen):
    """The inpaint ControlNet given a canvas-sized image masks what the sampler repaints:
    the job's mask in its place on the canvas and the whole grown border (-1)."""
    init = noise_image(15)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    image = noise_image(16, h=72, w=80)  # canvas-sized: 64 x 64 grown by BORDER
    unit = ControlUnit(type="inpaint", image=image)
    engine.run(job(init_image=init, mask=mask, outpaint=BORDER, controls=[unit]))
    (inp,) = seen["controls"]
    grown = outpaint.pad(mask, BORDER, 255)
    assert torch.equal(inp[None], control_image.to_tensor(image, grown))
    inside = np.zeros((72, 80), bool)
    inside[8:, 16:] = True
    assert (inp[:, ~torch.from_numpy(inside)] == -1).all()
    assert (inp[:, 8 + 20 : 8 + 40, 16 + 20 : 16 + 40] == -1).all()
    assert torch.equal(inp[:, 8:28, 16:36], tensor(image[8:28, 16:36]))


def _grown_canvas(img: np.ndarray, mask: np.ndarray | None, border: Outpaint) -> outpaint.Canvas:
    grown, grown_mask = outpaint.grow(img, mask, border)
    h, w = img.shape[:2]
    return outpaint.Canvas(grown, grown_mask, (w, h), (w, h), border)


def test_canvas_sized_inpaint_alpha_marks_the_inside_without_a_job_mask():
    """No job mask (a Krita selection over the empty margin only): the border, plus what
    the image's alpha marks, as an init-image-sized image's alpha is grown."""
    img = noise_image(17, h=32, w=32)
    border = Outpaint(right=8, bottom=8)
    canvas = _grown_canvas(img, None, border)
    rgba = np.concatenate([noise_image(18, h=40, w=40), np.zeros((40, 40, 1), np.uint8)], axis=2)
    rgba[0:8, 0:8, 3] = 255
    j = Job(**BASE, init_image=img, outpaint=border)
    unit = ControlUnit(type="inpaint", image=rgba)
    t = units.control_tensor(unit, j, 40, 40, _info("inpaint"), None, canvas)
    expected = np.maximum(outpaint.pad(np.zeros((32, 32), np.uint8), border, 255), rgba[:, :, 3])
    assert torch.equal(t, control_image.to_tensor(rgba[:, :, :3], expected))


def test_an_image_of_both_sizes_counts_as_init_image_sized():
    """Init 40 x 40 shrunk to the 32 x 32 job and grown by 8: the canvas is 40 x 40 too. The
    image is taken as made for the init image (resized and padded), as before."""
    img = noise_image(19, h=40, w=40)
    border = Outpaint(right=8, bottom=8)
    grown, grown_mask = outpaint.grow(masks.resize(img, 32, 32), None, border)
    canvas = outpaint.Canvas(grown, grown_mask, (40, 40), (32, 32), border)
    j = Job(**BASE, init_image=img, outpaint=border)
    t = units.control_tensor(
        ControlUnit(type="depth", image=img), j, 40, 40, _info("depth"), None, canvas
    )
    expected = outpaint.pad(control_image.resize(img, 32, 32, "just_resize"), border, 0)
    assert torch.equal(t[0], tensor(expected))


def test_only_masked_outpaint_crops_the_aligned_control_with_the_picture(engine, seen):
    init = marked(64, 64, (24, 32, 0, 8), bg=GREY)  # marker at the left edge
    depth = marked(64, 64, (24, 32, 0, 8))
    on_canvas = outpaint.pad(depth, Outpaint(left=16), 0)  # the same map, canvas-sized
    controls = [ControlUnit(type="depth", image=depth), ControlUnit(type="depth", image=on_canvas)]
    engine.run(
        job(
            init_image=init,
            outpaint=Outpaint(left=16),
            inpaint_full_res=True,
            inpaint_padding=8,
            controls=controls,
        )
    )
    picture, (ctl, ctl_canvas) = seen["picture"], seen["controls"]
    assert torch.equal(ctl, ctl_canvas)
    assert picture.shape[:2] == ctl.shape[1:]
    in_picture = (picture == WHITE).all(axis=2)
    in_control = (ctl > 0.5).all(0).numpy()
    assert in_picture.any()
    assert np.abs(centroid(in_picture) - centroid(in_control)).max() <= 0.75


def test_jobs_without_outpaint_are_unchanged(engine, seen):
    """A unit image of the init image's size is resized by its resize mode as before, even
    where the picture is stretched to another aspect: A1111's ControlNet extension resizes a
    unit's own image with the unit's resize mode (only the img2img input takes the picture's)."""
    init = marked(48, 64, (8, 16, 8, 16), bg=GREY)
    depth = marked(48, 64, (8, 16, 8, 16))
    mask = np.zeros((48, 64), np.uint8)
    mask[20:40, 20:40] = 255
    engine.run(job(init_image=init, mask=mask, controls=[ControlUnit(type="depth", image=depth)]))
    (ctl,) = seen["controls"]
    assert torch.equal(ctl, tensor(control_image.resize(depth, 64, 64, "crop_and_resize")))


def _info(kind: str) -> ControlNetInfo:
    return ControlNetInfo(name=f"control_v11p_sd15_{kind}", path=None, type=kind, layout="original")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [k for k in CONTROL_TYPES if k not in on_canvas.PICTURE_TYPES])
def test_border_value_per_type(kind):
    """Map types get their empty value in the border; the inpaint border is masked."""
    img = noise_image(11, h=32, w=32)
    border = Outpaint(right=8, bottom=8)
    grown, mask = outpaint.grow(img, None, border)
    canvas = outpaint.Canvas(grown, mask, (32, 32), (32, 32), border)
    j = Job(**BASE, init_image=img, outpaint=border)
    t = units.control_tensor(
        ControlUnit(type=kind, image=img), j, 40, 40, _info(kind), None, canvas
    )
    edge = t[0, :, 32:, :]
    expected = {"normalbae": (127, 127, 255), "inpaint": (-255, -255, -255)}.get(kind, (0, 0, 0))
    assert torch.equal(edge, (torch.tensor(expected).float() / 255)[:, None, None].expand_as(edge))
    assert torch.equal(t[0, :, :32, :32], tensor(img))


@pytest.mark.parametrize("kind", ["ip2p", "shuffle", "color"])
def test_picture_types_get_the_grown_picture(kind):
    """A colour grid continues with the picture's colours, not black (T2I colour adapter)."""
    img = noise_image(12, h=32, w=32)
    border = Outpaint(left=8, top=8)
    grown, mask = outpaint.grow(img, None, border)
    canvas = outpaint.Canvas(grown, mask, (32, 32), (32, 32), border)
    j = Job(**BASE, init_image=img, outpaint=border)
    info = ControlNetInfo(name=f"control_v11e_sd15_{kind}", path=None, type=kind, layout="original")  # type: ignore[arg-type]
    t = units.control_tensor(ControlUnit(type=kind, image=img), j, 40, 40, info, None, canvas)
    assert torch.equal(t[0], tensor(grown))


def test_a_unit_without_an_image_needs_an_init_image():
    with pytest.raises(DreamwireError) as err:
        Job(**BASE, controls=[ControlUnit(type="depth", image=None)]).validate()
    assert err.value.code == ErrorCode.INVALID_IMAGE
    init = noise_image(13)
    ok = Job(**BASE, init_image=init, controls=[ControlUnit(type="depth", image=None)]).validate()
    body, arrays = ok.to_wire()
    assert Job.from_wire(body, arrays).controls[0].image is None


def test_img2img_unit_without_an_image_takes_the_picture(engine, seen):
    init = noise_image(14, h=32, w=32)
    unit = ControlUnit(type="ip2p", image=None)
    engine.run(job(init_image=init, strength=0.75, controls=[unit]))
    (ctl,) = seen["controls"]
    picture = masks.resize(init, 64, 64)
    assert torch.equal(ctl, tensor(picture))
