"""SAM 2 click-to-mask: the backend's mask equals transformers' Sam2Model driven by its own
Sam2Processor on a tiny random model saved as transformers saves the released ones; the
weights are found in ComfyUI's, A1111's and Dreamwire's folders; a segment job goes over
the wire to a real backend process, and bad ones get stable codes while it keeps serving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamwire.backend.segmentation import sam2_masks
from dreamwire.backend.tiny import sam2 as tiny
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import ErrorEvent, ResultEvent
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import Click, Segment
from tests.support.backend import BackendProcess
from tests.support.wire import collect, ended

IMG = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI root with the tiny SAM 2 in models/sam2, and an empty annotator folder."""
    base = tmp_path_factory.mktemp("sam2")
    tiny.save(base / "comfy" / sam2_masks.COMFY_SAM2)
    (base / "empty").mkdir()
    return base / "comfy", base / "empty"


@pytest.fixture(scope="module")
def models(comfy):
    """The backend's model (found and loaded its way) and transformers' own, loaded once."""
    from transformers import Sam2Model

    root, empty = comfy
    folder = root / sam2_masks.COMFY_SAM2 / tiny.FOLDER
    return sam2_masks.load_model(folder).eval(), Sam2Model.from_pretrained(str(folder)).eval()


def reference(model, seg: Segment, multimask: bool) -> np.ndarray:
    """transformers' own path: Sam2Processor scales the prompts, Sam2Model predicts, and the
    masks are resized and thresholded as Sam2ImageProcessor.post_process_masks does (that
    module imports torchvision, which the CPU torch here lacks, so its two lines are
    repeated); the pixels are the one step taken from the backend (see sam2_masks)."""
    from transformers import Sam2Processor

    proc = Sam2Processor.__new__(Sam2Processor)  # its image processor needs torchvision
    proc.target_size, proc.point_pad_value = tiny.SIDE, -10
    kw = {}
    if seg.clicks:
        kw["input_points"] = [[[[c.x, c.y] for c in seg.clicks]]]
        kw["input_labels"] = [[[int(c.positive) for c in seg.clicks]]]
    if seg.box:
        kw["input_boxes"] = [[seg.box]]
    enc = proc(images=None, original_sizes=[list(IMG.shape[:2])], return_tensors="pt", **kw)
    enc.pop("original_sizes")
    pixels = sam2_masks.pixel_values(IMG, tiny.SIDE)
    with torch.no_grad():
        out = model(pixel_values=pixels, multimask_output=multimask, **enc)
    masks = F.interpolate(out.pred_masks[0], IMG.shape[:2], mode="bilinear", align_corners=False)
    return (masks[0, int(out.iou_scores[0, 0].argmax())] > 0).numpy()


def test_pixels_are_sam2_preprocessing():
    """Square resize with antialiasing, 0..1, ImageNet mean and std: a flat grey picture
    stays flat at (g/255 - mean) / std."""
    grey = np.full((30, 70, 3), 200, np.uint8)
    px = sam2_masks.pixel_values(grey, 64)
    assert px.shape == (1, 3, 64, 64)
    want = (200 / 255 - np.array(sam2_masks.IMAGENET_MEAN)) / np.array(sam2_masks.IMAGENET_STD)
    np.testing.assert_allclose(px[0].mean(dim=(1, 2)).numpy(), want, rtol=1e-5)
    assert float(px.std(dim=(2, 3)).max()) < 1e-5


@pytest.mark.parametrize(
    "seg",
    [
        Segment([Click(20.5, 30.0)]),  # one click: the best of three candidates
        Segment([Click(20, 30), Click(50, 10, positive=False)], box=[4, 2, 60, 44]),
        Segment(box=[10, 5, 40, 40]),
    ],
)
def test_mask_equals_transformers_sam2(models, seg):
    ours, theirs = models
    got = sam2_masks.predict(ours, IMG, seg)
    want = reference(theirs, seg, multimask=len(seg.clicks) == 1 and seg.box is None)
    assert got.shape == IMG.shape[:2] and got.dtype == bool
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < got.size  # a region, not an empty or full mask
    image = sam2_masks.mask_image(got)
    assert image.shape == (*IMG.shape[:2], 3) and set(np.unique(image)) <= {0, 255}


def test_found_in_a1111_and_own_folders_and_missing_names_the_model(comfy, tmp_path, monkeypatch):
    root, empty = comfy
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(empty))
    with pytest.raises(DreamwireError) as err:
        sam2_masks.find([tmp_path / "a1111"])
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND
    assert "sam2.1-hiera-tiny" in str(err.value) and "models/sam" in str(err.value)
    # Only SAM 2's original checkpoint: found (test_sam2_original.py loads one); a
    # transformers folder, once there, comes first.
    sam = tmp_path / "a1111" / sam2_masks.A1111_SAM
    sam.mkdir(parents=True)
    (sam / "sam2.1_hiera_large.pt").write_bytes(b"x")
    assert sam2_masks.find([tmp_path / "a1111"]) == sam / "sam2.1_hiera_large.pt"
    (sam / tiny.FOLDER).symlink_to(root / sam2_masks.COMFY_SAM2 / tiny.FOLDER)
    assert sam2_masks.find([tmp_path / "a1111"]) == sam / tiny.FOLDER
    assert sam2_masks.find([root]) == root / sam2_masks.COMFY_SAM2 / tiny.FOLDER
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(root / sam2_masks.COMFY_SAM2))
    assert sam2_masks.find([]).name == tiny.FOLDER
    with pytest.raises(DreamwireError) as err:
        sam2_masks.find([], name="sam2.1-hiera-large")
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND


def _job(seg: Segment | None, **kw) -> Job:
    return Job(mode=JobMode.SEGMENT, init_image=IMG, segment=seg, **kw)


@pytest.mark.parametrize(
    "seg, field",
    [
        (Segment(), "a click or a box"),
        (Segment([Click(64.5, 3)]), "segment.clicks[0].x"),
        (Segment([Click(3, -1)]), "segment.clicks[0].y"),
        (Segment([Click(3, 3, positive=1)]), "segment.clicks[0].positive"),
        (Segment(box=[40, 2, 10, 30]), "segment.box"),
        (Segment(box=[1, 2, 3]), "segment.box"),
        (Segment([Click(1, 1)] * 65), "segment.clicks"),
        (None, "needs its segment settings"),
    ],
)
def test_bad_segment_jobs_are_invalid_job(seg, field):
    with pytest.raises(DreamwireError) as err:
        _job(seg).validate()
    assert err.value.code is ErrorCode.INVALID_JOB and field in str(err.value)


def test_segment_job_round_trips_the_wire_form():
    job = _job(Segment([Click(2.5, 3, positive=False)], box=[1, 1, 9, 9]))
    body, arrays = job.to_wire()
    assert body["mode"] == "segment" and body["segment"]["clicks"][0]["positive"] is False
    back = Job.from_wire(body, arrays).validate()
    assert back.segment == job.segment
    body["segment"]["clicks"][0]["z"] = 1
    with pytest.raises(DreamwireError) as err:
        Job.from_wire(body, arrays)
    assert err.value.code is ErrorCode.INVALID_JOB
    # Other jobs' bodies carry no segment key (older backends refuse unknown fields).
    assert "segment" not in Job(prompt="x").to_wire()[0]


def test_segment_over_the_wire(comfy, models, tmp_path):
    """SAM 2's clicks and, in the same backend process, select subject (rembg's u2netp in a
    second root's models/rembg: test_subject_masks.py checks its mask step by step)."""
    from dreamwire.backend.segmentation import subject_masks
    from dreamwire.backend.tiny import subject as tiny_subject

    root, empty = comfy
    rembg_root = tmp_path / "rembg_root"
    tiny_subject.save(rembg_root / subject_masks.COMFY_REMBG, tiny_subject.U2NETP)
    seg = Segment([Click(20, 30), Click(50, 10, positive=False)])
    env = {"DREAMWIRE_ANNOTATORS": str(empty), "U2NET_HOME": str(empty)}
    with BackendProcess([root, rembg_root], tmp_path / "out", env=env) as backend:
        client = Client(backend.address)
        try:
            client.connect_wait(60)
            missing = _job(Segment([Click(1, 1)], model="sam2.1-hiera-large"))
            client.submit(missing)
            events = collect(client, ended(missing.job_id), timeout=60)
            good = _job(seg)
            client.submit(good)
            events += collect(client, ended(good.job_id), timeout=120)
            subject = _job(Segment(subject=True))
            client.submit(subject)
            events += collect(client, ended(subject.job_id), timeout=60)
        finally:
            client.close()
    ends = {e.job_id: e for e in events if isinstance(e, ResultEvent | ErrorEvent)}
    assert ends[missing.job_id].error.code is ErrorCode.MODEL_NOT_FOUND, ends[missing.job_id]
    result = ends[good.job_id]
    assert isinstance(result, ResultEvent), result
    got = result.result.images[0].image
    want = reference(models[1], seg, multimask=False)
    np.testing.assert_array_equal(got[..., 0] == 255, want)
    assert "SAM 2 model: sam2.1-hiera-tiny" in result.result.images[0].infotext
    image = ends[subject.job_id].result.images[0]
    want = subject_masks.predict(subject_masks.find([rembg_root]), IMG)
    np.testing.assert_array_equal(image.image, subject_masks.mask_image(want))
    assert "Subject model: u2netp.onnx (U2-Net" in image.infotext
