"""`dreamwire animate`: a folder of flow files (a square sliding over a wall) rendered in
warp-and-inpaint mode on the tiny model, with a depth control per frame from the flows;
a stopped run resumes; a folder without flow files is refused clearly."""

from __future__ import annotations

import numpy as np

from dreamwire.shared.codec import decode_png
from tests.support.flows import SIZE, run_animate, write_flows


def animate(tiny_models, flows, out, *extra):
    return run_animate(["--models", str(tiny_models)], flows, out, *extra)


def test_animate_warps_inpaints_and_resumes(tiny_models, tmp_path):
    flows, out = tmp_path / "flows", tmp_path / "out"
    write_flows(flows)
    code, rec = animate(tiny_models, flows, out, "--animation", "warp", "--depth-control", "0.8")
    assert code == 0 and rec["seed"] == 7 and rec["mode"] == "warp"
    frames = rec["frames"]
    assert [f["source"] for f in frames] == ["generated", "warped", "warped"]
    # The wall the square uncovers (4 px wide strip, grown by 2) is what is regenerated.
    assert 0.02 < frames[1]["regenerated"] < 0.1
    pngs = sorted(p.name for p in out.iterdir())
    assert pngs == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    first = (out / "frame_0001.png").read_bytes()
    assert decode_png(first).shape == (SIZE, SIZE, 3)
    # Stopped before frame 3: only frame 3 is made again.
    (out / "frame_0003.png").unlink()
    code, rec = animate(tiny_models, flows, out, "--animation", "warp")
    assert code == 0
    assert [f["source"] for f in rec["frames"]] == ["on disk", "on disk", "warped"]
    assert (out / "frame_0001.png").read_bytes() == first


def test_animate_refuses_a_folder_without_flows(tiny_models, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _ = animate(tiny_models, tmp_path / "empty", tmp_path / "out")
    assert code == 2 and "[invalid_job]" in capsys.readouterr().err
    write_flows(tmp_path / "flows")
    code, _ = animate(tiny_models, tmp_path / "flows", tmp_path / "o2", "--keys", "x")
    err = capsys.readouterr().err
    assert code == 2 and "--keys" in err


def test_animate_animatediff_batch_resumes(tiny_models, tmp_path):
    flows, out = tmp_path / "flows", tmp_path / "out"
    write_flows(flows, frames=3)
    extra = ["--animation", "animatediff", "--motion-module", "tiny_mm_sd1",
             "--context-length", "2", "--context-stride", "1", "--steps", "1"]  # fmt: skip
    code, rec = animate(tiny_models, flows, out, *extra)
    assert code == 0 and rec["mode"] == "animatediff"
    assert [f["source"] for f in rec["frames"]] == ["generated"] * 3
    made = [decode_png((out / f"frame_000{i}.png").read_bytes()) for i in (1, 2, 3)]
    assert made[0].shape == (SIZE, SIZE, 3) and not np.array_equal(made[0], made[2])
    # A stopped render resumes: the batch runs again and only the missing frame is stored,
    # the same picture as before (same seed, same batch).
    (out / "frame_0002.png").unlink()
    code, rec = animate(tiny_models, flows, out, *extra)
    assert [f["source"] for f in rec["frames"]] == ["on disk", "generated", "on disk"]
    np.testing.assert_array_equal(decode_png((out / "frame_0002.png").read_bytes()), made[1])
