"""Real Krita (kritarunner, offscreen) against a real backend process with the tiny models,
in the Krita run shared with test_krita_offline (krita_session.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from krita_harness import KRITARUNNER

pytestmark = [
    pytest.mark.krita,
    pytest.mark.skipif(KRITARUNNER is None, reason="Krita (kritarunner) is not installed"),
]


@pytest.fixture(scope="module")
def run(krita_session):
    out = krita_session.part("dw_backend")
    print({k: v for k, v in out.items() if k in ("outpaint", "cancel", "dies")})
    return out, krita_session.record, krita_session.dump


def _arrived(record: Path, job_id: str, name: str) -> np.ndarray:
    files = sorted((record / job_id).glob(name))
    assert files, f"the backend got no {name} for job {job_id}: {list((record / job_id).iterdir())}"
    return np.load(files[0])


def _fields(record: Path, job_id: str) -> dict:
    return json.loads((record / job_id / "job.json").read_text())


def test_connects_and_lists_models(run):
    out, _, _ = run
    assert out["connected"] and "tiny-sd1" in out["welcome_models"]


def test_generate_at_selection_lands_as_a_group_of_layers(run):
    g = run[0]["generate_sel"]
    assert g["ok"], g["message"]
    assert g["group"][1] == "grouplayer" and "a red fox" in g["group"][0]
    assert [t for _, t, _ in g["layers"]] == ["paintlayer", "paintlayer"]
    for (name, _, bounds), seed in zip(g["layers"], g["seeds"], strict=True):
        assert bounds == [10, 12, 50, 40]  # exactly the selection's bounds
        assert str(seed) in name and "a red fox" in name and "1.2" not in name
    assert sorted(g["seeds"]) == [1234, 1235]  # batch seeds follow A1111: seed, seed+1
    assert g["job_size"] == [64, 64] and all(g["pixels_match_result"])


def test_generate_without_selection_covers_the_document(run):
    g = run[0]["generate_doc"]
    assert g["ok"] and g["bounds"] == [0, 0, 100, 80] and g["job_size"] == [104, 80]


def test_refine_sends_the_visible_canvas_and_adds_a_layer(run):
    out, record, _ = run
    r = out["refine"]
    assert r["ok"], r["message"]
    assert r["bounds"] == [0, 0, 100, 80] and r["kept_layers"] and "refine" in r["name"]
    init = _arrived(record, r["job_id"], "init.npy")
    assert init.shape == (80, 104, 3)


def test_select_by_clicking_turns_sam2_mask_into_the_selection(run):
    """The active layer's dots arrive as clicks in canvas pixels (red: "not this"), the
    canvas without them as the picture, and the selection becomes SAM 2's mask."""
    from dreamwire.backend.segmentation import sam2_masks
    from dreamwire.backend.tiny import sam2 as tiny
    from dreamwire.backend.tiny import subject as tiny_subject
    from dreamwire.shared.job import Job

    out, record, dump = run
    r = out["select"]
    assert r["ok"], (r["message"], r)
    assert r["dots_visible"]  # hidden only while the picture was read
    body = _fields(record, r["job_id"])
    assert body["mode"] == "segment" and body["segment"]["box"] is None
    clicks = sorted((c["x"], c["y"], c["positive"]) for c in body["segment"]["clicks"])
    assert clicks == [(30.5, 40.5, True), (70.5, 20.5, False)]
    init = _arrived(record, r["job_id"], "init.npy")
    np.testing.assert_array_equal(init, np.load(dump / "select-canvas.npy")[..., :3])  # opaque
    job = Job.from_wire(body, [init])
    model = sam2_masks.load_model(tiny.save(dump / "sam2")).eval()
    want = sam2_masks.predict(model, init, job.segment)
    got = np.load(dump / "select-selection.npy")
    np.testing.assert_array_equal(got == 255, want)
    assert 0 < want.sum() < want.size
    # Select subject on the same canvas: rembg's u2netp's soft mask becomes the selection.
    from dreamwire.backend.segmentation import subject_masks

    r = out["subject"]
    assert r["ok"], r["message"]
    assert _fields(record, r["job_id"])["segment"]["subject"] is True
    init = _arrived(record, r["job_id"], "init.npy")
    path = tiny_subject.save(dump / "rembg", tiny_subject.U2NETP)
    model = subject_masks.SubjectModel(path, subject_masks.identify(path))
    np.testing.assert_array_equal(
        np.load(dump / "subject-selection.npy"), subject_masks.predict(model, init)
    )


def test_control_layer_made_from_the_active_layer_lands_above_it_marked(run):
    """The active layer's pixels go out as a preprocess job; the backend's canny map lands
    as a new layer right above that layer, marked as a canny control layer."""
    from dreamwire.backend.conditioning import control_image, preprocess

    out, record, dump = run
    r = out["control_from_layer"]
    assert r["ok"], (r["message"], r)
    assert r["names"] == ["Background", "sketch", "Canny of sketch", "top"]  # bottom first
    assert r["mark"] == {r["made_id"]: "canny"}
    assert r["active"] in (None, "sketch")  # never the new layer (no view: maybe none)
    body = _fields(record, r["job_id"])
    assert body["mode"] == "preprocess"
    assert [(u["type"], u["preprocessor"]) for u in body["controls"]] == [("canny", "canny")]
    init = _arrived(record, r["job_id"], "init.npy")
    assert init.shape == (80, 100, 3) and tuple(init[0, 0]) == (255, 255, 255)  # over white
    want = control_image.resize(preprocess.run("canny", init), 100, 80, "just_resize")
    layer = np.load(dump / "control-layer.npy")
    assert (layer[..., 3] == 255).all()
    np.testing.assert_array_equal(layer[..., :3], want)
    assert want.any()  # the square's edges, not an empty map


def test_inpaint_changes_only_the_selection(run):
    out, record, dump = run
    r = out["inpaint"]
    assert r["ok"], r["message"]
    assert r["masked"] in ("transparency mask", "alpha")
    assert r["outside_unchanged"] and r["inside_changed"]
    # The mask that arrived is the selection, feather and all, over the sent region.
    mask = _arrived(record, r["job_id"], "mask.npy")
    sel = np.load(dump / "inpaint-selection.npy")
    assert mask.sum() == sel.astype(np.int64).sum() and len(np.unique(mask)) > 4
    init = _arrived(record, r["job_id"], "init.npy")
    visible = np.load(dump / "inpaint-visible.npy")
    assert init.shape[:2] == mask.shape
    # The init image is a window of the canvas as the artist sees it.
    h, w = init.shape[:2]
    hits = [
        (y, x)
        for y in range(0, 80 - h + 1)
        for x in range(0, 100 - w + 1)
        if np.array_equal(visible[y : y + h, x : x + w, :3], init)
    ]
    assert hits
    # The panel's Masked content arrived with the job.
    assert _fields(record, r["job_id"])["inpaint_fill"] == "fill"


def test_selection_past_the_content_outpaints(run):
    out, record, _ = run
    o = out["outpaint"]
    assert o["ok"], o["message"]
    assert o["grow"][1] > 0 and o["grow"][1] % 8 == 0 and o["grow"][0] == 0
    # Region: the selection plus 32 px of context, (32, 0, 96, 64); content ends at x=80.
    assert o["init"][1] + o["grow"][1] == 96 and o["init"][1] == 48
    assert o["bounds"] == [64, 0, 64, 64]
    assert o["outside_unchanged"] and o["filled"]
    assert _fields(record, o["job_id"])["inpaint_fill"] == "latent noise"


def test_control_layer_arrives_as_the_right_image(run):
    out, record, dump = run
    r = out["control"]
    assert r["ok"], r["message"]
    image = _arrived(record, r["job_id"], "control-0-scribble.npy")
    sketch = np.load(dump / "control-sketch.npy")
    want = np.repeat(sketch[:, :, 3:4], 3, axis=2)  # strokes white on black
    assert image.shape == (64, 64, 3) and np.array_equal(image, want)


def test_a_switched_off_control_layer_is_left_out_and_back_in_when_on(run):
    out, record, _ = run
    off = out["control"]["off"]
    assert off["ok"], off["message"]
    assert off["switched"] and off["visible"] and off["still_marked"] == [["scribble", False]]
    assert _fields(record, off["job_id"])["controls"] == []
    assert not list((record / off["job_id"]).glob("control-*.npy"))
    on = _fields(record, out["control"]["job_id"])["controls"]
    assert [u["type"] for u in on] == ["scribble"]


def test_region_layers_arrive_as_regional_prompts(run):
    """A "region: ..." layer at 0 % opacity arrives with its alpha as the mask; a hidden
    one does not arrive."""
    out, record, dump = run
    r = out["regions"]
    assert r["ok"], r["message"]
    sent = _fields(record, r["job_id"])["regions"]
    assert [(x["prompt"], x["weight"]) for x in sent] == [("a red barn", 1.0)]
    mask = _arrived(record, r["job_id"], "region-0.npy")
    assert np.array_equal(mask, np.load(dump / "region-barn.npy")[..., 3])


def test_history_reinserts_and_copies_parameters(run):
    h = run[0]["history"]
    assert h["entries"] >= 6 and h["reinserted"]
    assert h["copied"]["seed"] == 5 and h["copied"]["steps"] == 2 and h["copied"]["batch"] == 4
    assert h["copied"]["prompt"] == "a red fox, (snow:1.2)"


def test_results_wait_as_previews_and_the_history_is_saved_with_the_document(run):
    r = run[0]["previews"]
    assert "error" not in r, r.get("error")
    assert r["ok"], r["message"]
    # A batch of 2 is one choice: both in the history, neither a layer, one preview layer.
    assert r["batch"] == [[40, False], [41, False]] and r["shows_first"] and r["shows_second"]
    assert r["names_preview"][-1] == "Dreamwire result preview" and r["preview_layers"] == 1
    assert r["message"].startswith("2 results to choose from")
    # Applying the second adds one layer, named by the prompt first; the preview goes.
    assert r["applied"] == "a red fox, snow · DW 41" and r["applied_exact"]
    assert r["added"] == 1 and "Dreamwire result preview" not in r["names_after"]
    # Reopened from the .kra: settings and thumbnails for both, the full image only for
    # the one not applied, which can still be applied.
    assert r["saved"] and r["loaded"] == 2 and r["loaded_again"] == 0
    assert r["loaded_batch"] == [[40, False, True], [41, True, False]]
    assert r["loaded_image_exact"] and r["loaded_prompt"] == "a red fox, (snow:1.2)"
    assert r["applied_after_reopen"] == "a red fox, snow · DW 40" and r["added_after_reopen"] == 1
    print(
        "history annotation",
        r["annotation_bytes"],
        "bytes; .kra",
        r["kra_bytes"],
        r["seconds"],
        "s",
    )


def test_cancel_stops_the_job_and_changes_nothing(run):
    r = run[0]["cancel"]
    assert r["progressed"] and r["cancelled"] and r["unchanged"]
    # The live preview reached the docker's status while the job ran.
    assert r["preview_shape"] and r["preview_shape"][2] == 3
    assert "Cancelled" in r["message"]


def test_upscale_scales_the_document_and_adds_the_refined_canvas(run):
    out, record, _ = run
    u = out["upscale"]
    assert u["ok"], u["message"]
    assert u["doc_size"] == [75, 60] and u["bounds"] == [0, 0, 75, 60]
    assert u["kept_layers"] and "upscale" in u["name"] and u["pixels_match_result"]
    assert u["upscalers"][:2] == ["Lanczos", "Nearest"]
    fields = _fields(record, u["job_id"])
    assert fields["upscale"]["scale"] == 1.5 and fields["upscale"]["refine"] is True
    assert fields["strength"] == 0.3
    assert _arrived(record, u["job_id"], "init.npy").shape == (40, 50, 3)


def test_flux_model_takes_flux_settings_and_lands_with_distilled_cfg(run):
    f = run[0]["flux"]
    # The default model (SD1.x) keeps SD's values; picking the Flux model switches to Forge's
    # Flux preset from the welcome and shows the Distilled CFG; the artist's values then stay.
    assert f["connected"] and f["sd"] == [20, 7.0, "DPM++ 2M Karras", 3.5, False]
    assert f["switched"] == [20, 1.0, "Euler", 3.5, True]
    assert f["kept"] == [2, 1.0, "Euler", 2.5, True]
    # What Flux cannot run is greyed out, the backend's reason as the tooltip.
    region_enabled, region_tip = f["greyed"]["region"]
    assert not region_enabled and region_tip.startswith("Flux.1 models: regional prompts")
    assert f["greyed"]["refine"] == [False, False]
    # No Flux ControlNet in this library: its types are greyed out naming the file to add.
    whys = [w for w in f["greyed"]["controls"] if w]
    assert whys and all(w.startswith("Not available for Flux.1 models: ") for w in whys)
    assert any("FLUX.1-dev-ControlNet-Union-Pro-2.0" in w for w in whys)
    g = f["generated"]
    assert g["ok"], g["message"]
    assert [t for _, t in g["layers"]] == ["paintlayer"] and "a red fox" in g["layers"][0][0]
    assert g["bounds"] == [[0, 0, 64, 64]] and g["job_distilled"] == 2.5
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 1," in g["infotext"]
    assert "Distilled CFG Scale: 2.5" in g["infotext"] and "Seed: 7," in g["infotext"]
    edit_enabled, edit_tip = f["greyed"]["edit"]
    assert not edit_enabled and edit_tip == "needs an edit model (Flux Kontext)"
    assert f["edit_refused"][0] is None and "needs an edit model" in f["edit_refused"][1]
    e = f["edited"]
    assert f["edit_enabled"] and e["ok"], e["message"]
    # Refine's region around the selection goes out (grown to the smallest job size: the
    # whole 64 px canvas here); the layer lands on the selection only.
    assert e["mode"] == "edit" and e["size"] == [64, 64] and " · DW edit ×" in e["group"]
    assert e["bounds"] == [[8, 8, 32, 32]]
    assert _arrived(run[1], e["job_id"], "init.npy").shape == (64, 64, 3)
    r = f["region"]
    assert r["job_id"] is None and r["level"] == "error"
    assert r["message"].startswith("Flux.1 models: regional prompts need per-region attention")
    # Back to an SD model: the SD values the panel had, the Distilled CFG hidden again.
    assert f["back"] == [20, 7.0, "DPM++ 2M Karras", 3.5, False]


def test_backend_dying_mid_job_is_reported_and_the_document_is_unharmed(run):
    r = run[0]["dies"]
    assert r["progressed"] and r["noticed"], r
    assert r["level"] == "error" and "stopped answering" in r["message"]
    assert r["unchanged"]
    assert r["after_cancel"] == [False, "Cancelled; the document was not changed."]


def test_local_backend_command_is_started_used_and_stopped(krita_session):
    out = krita_session.part("dw_local")
    assert out["stored"] == krita_session.local_command
    assert out["started"] and out["connected"] and out["generated"], out["message"]
    assert isinstance(out["exit"], int)  # stopped with the plugin, not left running
    # The backend it started saved the result.
    assert list(krita_session.local_out.rglob("*.png"))
    # A result for a document closed meanwhile is reported, not placed, and Krita lives on.
    assert out["closed"]["applied"] == 0 and out["closed"]["level"] == "warning", out["closed"]
    assert "document was closed" in out["closed"]["message"]
    assert out["closed"]["history"] == 2  # the first result and the orphaned one


def test_a_local_backend_that_cannot_start_says_why_and_keeps_saying_it(krita_session):
    label, message, level = krita_session.part("dw_local")["failed"]
    assert (label, level) == ("Backend failed", "error")
    assert message.endswith("command not found: dreamwire-not-installed"), message


def test_xyz_plot_grid_lands_as_a_layer_with_its_cells_in_a_group(run):
    out, record, _ = run
    x = out["xyz"]
    assert x["ok"] and x["queued"] == 4, x["message"]
    (grid_name, grid_type, grid_bounds), (group_name, group_type, _) = x["layers"]
    assert grid_type == "paintlayer" and "Steps x CFG Scale" in grid_name
    assert group_type == "grouplayer" and grid_bounds[2:] == x["grid_size"]
    assert x["cells"] == [
        "Steps: 1, CFG Scale: 3.0",
        "Steps: 2, CFG Scale: 3.0",
        "Steps: 1, CFG Scale: 5.0",
        "Steps: 2, CFG Scale: 5.0",
    ]
    assert all(x["cells_match_grid"]) and x["cells_differ"]
    assert min(x["label_ink"]) > 0  # the X labels above and the Y labels left were drawn
    assert x["progress_totals"] == [4]  # one progress for the whole grid
    # Each cell went through the backend's queue as a job of its own.
    sent = sorted((_fields(record, j)["steps"], _fields(record, j)["cfg"]) for j in x["job_ids"])
    assert sent == [(1, 3.0), (1, 5.0), (2, 3.0), (2, 5.0)]
    assert x["refused"][0] == 0 and "Steps" in x["refused"][1]


def test_model_list_refreshes_after_a_merge_on_the_running_backend(run):
    m = run[0]["models_refresh"]
    assert m["merge_rc"] == 0, m["merge_err"]
    assert not m["had"] and m["listed"] and m["family"] == "sd1"
    assert m["forgotten"]  # removed again: no longer listed
    # Both without a Refresh: the backend pushed models_changed each time.


def test_attention_maps_land_as_a_group_of_overlays_named_by_word(run):
    print("X/Y/Z, merge refresh, DAAM seconds:", run[0]["a1111_tools_seconds"])
    a = run[0]["attention_maps"]
    assert a["ok"] and a["sent"], a["message"]
    assert len(a["groups"]) == 1 and a["groups"][0].startswith("Attention maps: ")
    assert a["words"] == ["a", "red", "fox", "snow"]  # base prompt "a red fox, (snow:1.2)"
    assert a["visible"] == [True, False, False, False]
    assert all(b == [0, 0, 64, 64] for b in a["bounds"])
