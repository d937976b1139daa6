"""`dreamwire generate --server` runs the same job as in-process, through a backend."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.support import warm_python


def generate(*args: str) -> dict:
    done = warm_python.run(
        [
            "-m",
            "dreamwire.backend",
            "generate",
            "--prompt",
            "a red fox",
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
            "--sampler",
            "Euler",
            "--seed",
            "123",
            "--json",
            *args,
        ],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_generate_through_the_server_equals_in_process(backend, tiny_models, tmp_path):
    remote = generate("--server", backend.address, "--out", str(tmp_path / "remote"))
    local = generate("--models", str(tiny_models), "--out", str(tmp_path / "local"))
    (r,), (loc,) = remote["images"], local["images"]
    assert r["seed"] == loc["seed"] == 123
    assert r["infotext"] == loc["infotext"]
    np.testing.assert_array_equal(
        np.asarray(Image.open(r["path"])), np.asarray(Image.open(loc["path"]))
    )
    # The backend kept its own copy too.
    assert (backend.out_dir / "jobs" / remote["job_id"] / "result.json").is_file()


def test_control_units_and_regions_travel_to_the_server(backend, tiny_models, tmp_path):
    """The control image (a 16-bit depth file: a float32 array) and the region mask cross the
    wire intact: the backend's image equals the same job run in this process."""
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.engine_options import build_engine
    from dreamwire.backend.cli.generate import build_job
    from dreamwire.shared.infotext import parse_infotext

    y, x = np.mgrid[0:64, 0:64]
    Image.fromarray(((x + y) * 500).astype(np.uint16)).save(tmp_path / "depth16.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :40] = 200
    Image.fromarray(mask).save(tmp_path / "mask.png")
    flags = [
        "--control",
        "depth:control_v11f1p_sd15_depth",
        str(tmp_path / "depth16.png"),
        "weight=0.7",
        "end=0.5",
        "--region",
        "a red barn",
        str(tmp_path / "mask.png"),
        "0.9",
    ]
    remote = generate("--server", backend.address, "--out", str(tmp_path / "remote"), *flags)
    (r,) = remote["images"]
    info = parse_infotext(r["infotext"])
    assert info.controlnets[0].model_name == "control_v11f1p_sd15_depth"
    assert info.extras["Regions"] == "1"
    assert remote["controlnets"][0]["end"] == 0.5

    argv = ["generate", "--prompt", "a red fox", "--width", "64", "--height", "64"]
    argv += ["--steps", "2", "--sampler", "Euler", "--seed", "123", *flags]
    job = build_job(build_parser().parse_args(argv))
    local = build_engine([tiny_models], "cpu", None).run(job)
    assert local.images[0].infotext == r["infotext"]
    np.testing.assert_array_equal(np.asarray(Image.open(r["path"])), local.images[0].image)


def test_animate_fixed_seed_frames_fan_out_through_the_server(backend, tmp_path):
    """`dreamwire animate --server` in the fixed-seed mode: every frame a `batch` job of its
    own, one in flight at a time on this one-worker backend (each queued at position 0, as
    the backend's log says), all written; a rerun sends only the frames not on disk."""
    import re

    from dreamwire.shared.codec import decode_png
    from tests.support.flows import run_animate, write_flows

    def queued_since(mark: int) -> list[str]:
        return re.findall(r"queued \((\w+) priority, position (\d+)\)", backend.log_text()[mark:])

    flows, out = tmp_path / "flows", tmp_path / "out"
    write_flows(flows, frames=3)
    server = ["--server", backend.address]
    mark = len(backend.log_text())
    code, rec = run_animate(server, flows, out, "--animation", "fixed_seed")
    assert code == 0 and rec["mode"] == "fixed_seed"
    assert [(f["frame"], f["source"]) for f in rec["frames"]] == [
        (1, "generated"),
        (2, "generated"),
        (3, "generated"),
    ]
    assert queued_since(mark) == [("batch", "0")] * 3
    pngs = [decode_png((out / f"frame_000{i}.png").read_bytes()) for i in (1, 2, 3)]
    assert pngs[0].shape == (64, 64, 3) and np.array_equal(pngs[0], pngs[2])  # one seed
    # Stopped after frame 2: frames 1 and 3 are made again, frame 2 is kept as it was.
    kept = (out / "frame_0002.png").read_bytes()
    (out / "frame_0001.png").unlink()
    (out / "frame_0003.png").unlink()
    mark = len(backend.log_text())
    code, rec = run_animate(server, flows, out, "--animation", "fixed_seed")
    assert code == 0
    assert [f["source"] for f in rec["frames"]] == ["generated", "on disk", "generated"]
    assert queued_since(mark) == [("batch", "0")] * 2
    assert (out / "frame_0002.png").read_bytes() == kept


def test_animate_keyframe_in_betweens_fan_out_through_the_server(backend, tmp_path):
    """`dreamwire animate --server --animation keyframes`: the keys one job at a time, the
    three in-betweens (each with a patch only it shows) as one fan-out of `batch` jobs, one
    in flight per worker (one here: each queued at position 0)."""
    import re

    from tests.support.flows import run_animate, write_patch_flows

    flows, out = tmp_path / "flows", tmp_path / "out"
    write_patch_flows(flows)
    mark = len(backend.log_text())
    code, rec = run_animate(
        ["--server", backend.address], flows, out, "--animation", "keyframes",
        "--key-every", "4", "--refresh", "0",
    )  # fmt: skip
    assert code == 0
    assert [(f["frame"], f["source"]) for f in rec["frames"]] == [
        (1, "generated"),
        (2, "propagated"),
        (3, "propagated"),
        (4, "propagated"),
        (5, "warped"),
    ]
    queued = re.findall(r"queued \((\w+) priority, position (\d+)\)", backend.log_text()[mark:])
    # Key 1, key 5 (carried from 1, the patches on the way inpainted), then the group.
    assert queued[2:] == [("batch", "0")] * 3
    assert len(queued) == 5 and "batch" not in {p for p, _ in queued[:2]}
    assert sorted(p.name for p in out.glob("*.png")) == [f"frame_000{i}.png" for i in range(1, 6)]
