"""Marigold folders in the artist's model folders: found as their own kind (apart from the
checkpoints sharing ComfyUI's `diffusers` folder), what each makes read from its
model_index.json, a job's maps planned onto them, and the engine's maps equal to diffusers'
own pipelines with the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.engine import Engine
from dreamwire.backend.engine import materials as plan_materials
from dreamwire.backend.library import Kind, ModelLibrary
from dreamwire.backend.library.library import parse_kind
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.materials import Materials
from tests.support.marigold import APPEARANCE, LIGHTING, NORMALS

IMG = np.random.default_rng(4).integers(0, 255, (40, 56, 3), dtype=np.uint8)


def job(*maps: str, **kw) -> Job:
    settings = Materials(maps=list(maps), **kw)
    return Job(mode=JobMode.MATERIALS, init_image=IMG, seed=11, materials=settings).validate()


def test_marigold_folders_are_their_own_kind_beside_checkpoints(marigold_root):
    lib = ModelLibrary([marigold_root])
    assert sorted(lib.names(Kind.MARIGOLD)) == [APPEARANCE, LIGHTING]
    # The SD pipeline in `diffusers` is still a checkpoint; nothing of a Marigold folder is.
    assert lib.names(Kind.CHECKPOINT) == ["an-sd1-pipeline"]
    assert parse_kind("diffusers") is Kind.CHECKPOINT and parse_kind("Marigold") is Kind.MARIGOLD


def test_a_hub_cache_snapshot_of_a_marigold_model_is_listed_as_one(normals_root, tmp_path):
    snapshot = tmp_path / "models--prs-eth--marigold-normals-v1-1" / "snapshots" / "abc"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(normals_root / "models" / "Marigold" / NORMALS)
    lib = ModelLibrary([tmp_path])
    assert lib.names(Kind.MARIGOLD) == ["prs-eth/marigold-normals-v1-1"]
    assert lib.names(Kind.CHECKPOINT) == []


def test_welcome_lists_each_map_with_the_models_that_make_it(marigold_root, normals_root):
    offered = plan_materials.offered(ModelLibrary([marigold_root, normals_root]))
    assert offered == {
        "albedo": [APPEARANCE, LIGHTING],  # the lighting model's albedo too
        "roughness": [APPEARANCE],
        "metallic": [APPEARANCE],
        "normal": [NORMALS],
    }
    assert plan_materials.offered(ModelLibrary([])) == {}


def test_maps_are_grouped_into_one_call_per_model(marigold_root, normals_root):
    lib = ModelLibrary([marigold_root, normals_root])
    plan = plan_materials.plan(job("normal", "metallic", "albedo"), lib)
    assert plan.maps == ("normal", "metallic", "albedo")
    calls = {c.model: [s.map for s in c.sources] for c in plan.calls}
    assert calls == {NORMALS: ["normal"], APPEARANCE: ["metallic", "albedo"]}
    named = plan_materials.plan(job("albedo", intrinsics_model=LIGHTING), lib)
    assert [c.model for c in named.calls] == [LIGHTING]


@pytest.mark.parametrize(
    ("maps", "kw", "code", "words"),
    [
        (("normal",), {}, ErrorCode.MODEL_NOT_FOUND, "marigold-normals-v1-1"),
        (("roughness",), {"intrinsics_model": LIGHTING}, ErrorCode.MODEL_UNSUPPORTED, "not rough"),
        (("albedo",), {"intrinsics_model": "marigold-x"}, ErrorCode.MODEL_NOT_FOUND, "marigold-x"),
    ],
)
def test_maps_no_model_makes_are_refused_before_loading(marigold_root, maps, kw, code, words):
    with pytest.raises(DreamwireError) as err:
        plan_materials.plan(job(*maps, **kw), ModelLibrary([marigold_root]))
    assert err.value.code is code and words in err.value.message


def test_no_marigold_installed_names_the_folder_to_add(tmp_path):
    engine = Engine(ModelLibrary([tmp_path]), device="cpu", extensions=[])
    assert engine.capabilities()["materials"] == {}
    with pytest.raises(DreamwireError) as err:
        engine.run(job("albedo"))
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND
    assert "marigold-iid-appearance-v1-1" in err.value.message
    assert "models/Marigold" in err.value.message


def _direct(folder, cls_name: str, seed: int) -> np.ndarray:
    import diffusers

    pipe = getattr(diffusers, cls_name).from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(Image.fromarray(IMG), generator=torch.Generator("cpu").manual_seed(seed))
    return out.prediction


def test_normals_and_a_linear_albedo_equal_diffusers_own(marigold_root, normals_root):
    engine = Engine(ModelLibrary([marigold_root, normals_root]), device="cpu", extensions=[])
    seen = []
    result = engine.run(job("normal", "albedo", intrinsics_model=LIGHTING), seen.append)
    # Progress counts every UNet call of both models (4 default steps each).
    steps = [(p.step, p.total) for p in seen if p.state == "generating"]
    assert steps[-1] == (8, 8) and [s for s, _ in steps] == sorted(s for s, _ in steps)
    normal, albedo = result.images
    assert (normal.map, albedo.map) == ("normal", "albedo")
    assert normal.image.shape == albedo.image.shape == (*IMG.shape[:2], 3)

    pred = _direct(normals_root / "models" / "Marigold" / NORMALS, "MarigoldNormalsPipeline", 11)
    want = np.round((np.clip(pred[0], -1, 1) + 1) / 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(normal.image, want)

    folder = marigold_root / "models" / "diffusers" / LIGHTING
    linear = np.clip(_direct(folder, "MarigoldIntrinsicsPipeline", 11)[0], 0, 1)
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    np.testing.assert_array_equal(albedo.image, np.round(srgb * 255).astype(np.uint8))
    assert not np.array_equal(albedo.image, np.round(linear * 255).astype(np.uint8))

    # A cancel stops the job at the next UNet call, with its code.
    with pytest.raises(DreamwireError) as err:
        engine.run(job("normal"), should_cancel=lambda: True)
    assert err.value.code is ErrorCode.CANCELLED
