"""The docker itself, in full Krita under Xvfb, driven by a startup plugin."""

from __future__ import annotations

import json

import pytest
from dreamwire_krita.logic import workspaces
from dreamwire_krita.logic.upscale import default_upscaler
from krita_harness import KRITA, XVFB, build_zip, make_profile, run_gui

from dreamwire.shared.refine_upscaler import upscale_models
from tests.support.backend import BackendProcess

pytestmark = [
    pytest.mark.krita,
    pytest.mark.skipif(KRITA is None or XVFB is None, reason="needs krita and Xvfb"),
]


@pytest.fixture(scope="module")
def gui(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("krita-gui")
    with BackendProcess([tiny_models], root / "out") as backend:
        prof = make_profile(
            root / "profile", build_zip(root / "dist"), settings={"address": backend.address}
        )
        # The smallest screen the docker must work on: everything below runs on it.
        shots = root / "shots"
        shots.mkdir()
        out = run_gui(
            prof,
            {"timeout": 110, "manual": str(shots)},
            timeout=220,
            screen=workspaces.SMALL_SCREEN,
        )
    out["manual_files"] = {p.name: p.stat().st_size for p in shots.glob("*.png")}
    return out, prof


def test_docker_connects_and_fills_lists_from_welcome(gui):
    out, _ = gui
    assert "error" not in out, out.get("error")
    assert out["docker_title"] == "Dreamwire"
    assert out["state_label"] == "Connected"
    assert "tiny-sd1" in out["models"] and out["samplers"] > 3
    # The Upscale workspace lists the backend's upscalers; its defaults are Krita AI
    # Diffusion's.
    assert out["upscalers"][:2] == ["Lanczos", "Nearest"]
    # Upscale starts with the best model upscaler listed (the tiny library has one), not
    # with a Lanczos resize.
    models = upscale_models(out["upscalers"])
    assert models and out["upscale_choice"] == [2.0, default_upscaler(models), True, 0.3]
    assert out["upscale_choice"][1] in models


def test_docker_fits_a_1080p_screen_and_works_at_1366x768(gui):
    out = gui[0]
    assert "error" not in out, out.get("error")
    lay = out["layout"]
    assert lay["screen"] == list(workspaces.SMALL_SCREEN)
    for ws, size in lay["sizes"].items():
        # Every workspace, unscrolled, fits a 1080p screen's work area beside Layers ...
        assert 0 < size["needed"] <= workspaces.SCREEN_1080_BUDGET, (ws, size)
        # ... and scrolls on a 768-line screen instead of pushing Krita's window past it.
        assert 0 < size["minimum"] <= workspaces.SMALL_SCREEN[1] // 2, (ws, size)
    assert lay["window"][1] <= workspaces.SMALL_SCREEN[1], lay
    assert lay["window_minimum"] <= workspaces.SMALL_SCREEN[1], lay
    assert lay["docker_visible"] and lay["status_visible"] and lay["pages"] == [0, 3]


def test_the_manual_screenshots_are_taken_in_every_workspace(gui):
    # scripts/krita_screenshots.py retakes the manual's pictures through this same step.
    out = gui[0]
    names = [f"docker-{ws.value}.png" for ws in workspaces.Workspace] + ["krita.png"]
    assert out["manual_shots"] == names
    assert all(out["manual_files"].get(n, 0) > 2000 for n in names), out["manual_files"]


def test_insertions_leave_the_artists_active_layer_active(gui):
    active = gui[0]["active_after"]
    assert set(active) == {"generate", "inpaint", "live preview", "live apply"}
    assert active["generate"] == ["paint", "paint"]
    for what, (before, after) in active.items():
        assert before is not None and after == before, (what, active)


def test_krita_actions_generate_cancel_and_toggle_live(gui):
    a = gui[0]["actions"]
    assert a["found"] == sorted(
        ["dreamwire_generate", "dreamwire_cancel", "dreamwire_apply", "dreamwire_toggle_live"]
    )
    assert a["live_on"] == [True, "live", True] and a["live_off"] == [False, False]
    assert a["generated"] and a["cancelled"].startswith("Cancelled")
    # Two presses: two jobs in the queue menu, each with its own random seed.
    assert a["queue"] == ["Queue 2 (2 waiting)", 2, True], a["queue"]
    # The menu: each job, Cancel all, and the training entry (no docker height for it).
    assert len([t for t in a["menu"] if t.startswith("Cancel: ")]) == 2, a["menu"]
    assert a["menu"][-2:] == ["Cancel all", "Train LoRA from these layers…"], a["menu"]
    # The view's selected layers (the active one) are what a training would take.
    assert gui[0]["selected_layers"] == ["paint"], gui[0].get("selected_layers")


def test_docker_without_a_document_says_so(gui):
    assert gui[0]["no_document"] == "Open or create a document first."


def test_docker_generate_shows_a_preview_then_applies_it_as_a_layer(gui):
    g = gui[0]["generated"]
    seen = g["before_apply"]
    # The result waited in the history, selected, shown in the preview layer on top.
    assert seen["preview_on_top"] and seen["rows"] == 1 and seen["row_selected"] == 0
    assert seen["applied_before"] == 0 and seen["message"].startswith("1 result to choose")
    assert g["bounds"] == [0, 0, 96, 64]
    assert g["layer"] == "a lighthouse at dusk · DW 21"  # the prompt leads
    assert g["history_items"] == 1 and g["message"].startswith("Applied")


def test_docker_history_copies_parameters_back_into_the_panel(gui):
    assert gui[0]["copied_back"] == ["a lighthouse at dusk", 21, 2]


def test_one_generate_button_generates_then_inpaints_the_selection(gui):
    out = gui[0]
    assert out["after_click"].startswith("Generate: queued"), out["after_click"]
    assert out["button_label"] == "Inpaint" and out["inpaint_click"].startswith("Inpaint: queued")


def test_docker_inpaint_uses_a_real_transparency_mask(gui):
    r = gui[0]["inpainted"]
    assert r["before_apply"]["preview_on_top"] and r["before_apply"]["applied_before"] == 0, r
    assert r["masked"] == "transparency mask", (gui[0]["mask_notes"], r)
    assert r["masked"] == "transparency mask" and r["children"] == ["transparencymask"]
    assert r["outside_unchanged"] and r["inside_changed"]
    assert r["selection_kept"]  # the artist's selection is restored after making the mask


def test_docker_masked_content_choice_goes_into_the_inpaint_job(gui):
    out = gui[0]
    assert out["masked_content_items"] == ["fill", "original", "latent noise", "latent nothing"]
    assert out["masked_content_default"] == "original"  # A1111's default, and the Job's
    assert out["inpaint_job_fill"] == "latent nothing"


def test_panel_parameters_persist_in_krita_settings(gui):
    out, prof = gui
    params = json.loads(out["settings_params"])
    assert params["prompt"] == "a lighthouse at dusk" and params["seed"] == 21
    assert params["inpaint_fill"] == "latent nothing"
    # "Large images in two passes": on by default, unticked before Inpaint, saved so.
    assert out["two_pass_default"] is True and params["two_pass"] is False
    assert out["generate_hires"] == "None"
    # Krita rewrote its kritarc on the way out (KConfig format: keys may precede groups).
    text = (prof.config / "kritarc").read_text()
    section = text.split("[dreamwire]", 1)[1].split("\n[", 1)[0]
    assert "address=tcp://127.0.0.1:" in section


def test_vector_layer_drawn_as_a_skeleton_is_read_as_a_pose(gui):
    v = gui[0]["vector_pose"]
    assert v["units"] == [["openpose", 0.9, [64, 96, 3]]], v
    got = sorted((i, round(x), round(y)) for i, x, y in v["joints"])
    assert got == [(0, 48, 12), (1, 48, 24), (2, 38, 24), (5, 58, 24), (8, 42, 50), (11, 54, 50)], (
        v["svg_head"]
    )
    assert v["exact"], v["max_diff"]


def test_add_pose_is_a_draggable_body_whose_limbs_follow_and_undo_takes_it(gui):
    p = gui[0]["pose"]
    assert p["type"] == "vectorlayer" and p["mark"] == ["openpose"], p
    assert p["shapes"] == [18, 17] and p["in_selection"], p  # the selection holds it
    assert p["message"].startswith("Added a pose layer")
    (_, n0), (step, n1) = p["steps"]
    # Two undo steps: the layer, then its shapes (one step crashed Krita 5.1, pose_layer.py).
    assert n1 == n0 + 2 and step.startswith("Create"), p["steps"]
    f = p["follow"]
    # The docker's timer moved the limb elbow-wrist onto the dragged wrist.
    assert f["wrist"] == pytest.approx([9.0, -7.0], abs=1e-3)
    ends, joints = (sum(f[k], []) for k in ("limb_ends", "elbow_wrist"))
    assert ends == pytest.approx(joints, abs=0.5), f
    assert f["seconds"] < 5, f
    # The job Generate sent the backend has the annotator's drawing of the joints as
    # dragged (the wrist where it was dragged to); the backend ran it.
    assert f["units"] == ["openpose"] and f["exact"], f
    assert p["job_done"] == [True, "info"], p["job_done"]
    u = p["undo"]
    assert u["undone"] and u["redone"], u
    applied, (_, n0), (step, n1) = u["applied"]
    assert applied and n1 == n0 + 1 and step == "Add Layer", u  # an applied result: one step
    assert u["apply_undone"], u


def test_docker_offers_control_types_the_backend_serves_and_adds_regions(gui):
    out = gui[0]
    assert "error" not in out, out.get("error")
    r = out["controls_regions"]
    # tiny-sd1: the tiny library has a file for every type.
    assert all(enabled for enabled, _ in r["sd1"].values()) and "Reference" in r["sd1"]
    # tiny-sdxl: no SDXL colour adapter or shuffle ControlNet: greyed out, and why.
    assert r["sdxl"]["Colour"][0] is False and r["sdxl"]["Shuffle"][0] is False
    assert r["sdxl"]["Colour"][1].startswith("Not available for SDXL models: no color")
    assert r["sdxl"]["Depth"] == [True, ""] and r["sdxl"]["Reference"][0] is True
    assert r["refused"].startswith("Colour: Not available for SDXL")
    # Reference takes Krita AI Diffusion's defaults; its unit is the layer's picture.
    assert r["reference_defaults"] == [0.8, 0.2, 0.8]
    assert r["reference_mark"] == [["ip-adapter", 0.8, 0.2, 0.8]]
    assert r["reference_unit"] == [["ip-adapter", [16, 20, 3], [210, 0, 0]]]
    # Unticked in the list: still marked, left out of jobs, shown unticked; ticked: back.
    assert r["switch"] == {
        "ticked": [True, False],
        "off_marks": [False],
        "off_units": 0,
        "on_units": ["ip-adapter"],
    }
    reg = r["region"]
    assert reg["name"] == "region: a red barn" and reg["type"] == "paintlayer"
    assert reg["transparent"] and reg["above_reference"] and reg["prompt_cleared"]
    # Transparent, so not yet a region a job would use; the reader takes its name.
    assert reg["region_prompts"] == ["a red barn"]


def test_live_mode_previews_strokes_in_one_layer_and_applies_below_it(gui):
    out = gui[0]
    assert "error" not in out, out.get("error")
    lv = out["live"]
    assert lv["strength_default"] == 0.3 and lv["checked"]  # Krita AI Diffusion's default
    strength, priority, steps, sampler, batch, seed = lv["job"]
    # The backend lists the "live" queue class in its welcome: the live job uses it.
    assert (strength, priority, batch, seed) == (0.3, "live", 1, lv["seed"])
    # The tiny library has an SD1 LCM-LoRA (tiny/lcm_lora.py): LCM with its few steps,
    # whatever the panel's sampler.
    assert (steps, sampler) == (6, "LCM") != (steps, out["live_sampler_panel"])
    # The control layer marked earlier (the reference) goes into live jobs too.
    assert lv["units"] == ["ip-adapter"]
    assert lv["top"] == "Live preview" and lv["preview_layers"] == 1 and lv["exact"]
    assert lv["quiet"]  # unchanged canvas: no new job, though the preview layer changed
    # A stroke: a new job with the same seed, its result in the same layer.
    assert lv["second_job"] and lv["same_seed"] and lv["same_layer"]
    assert lv["preview_layers_after"] == 1 and lv["exact_after"]
    assert lv["read_bare"] and lv["preview_differs"], lv  # the preview never feeds back
    assert len(lv["applied"]) == 1 and lv["applied_below"] and lv["applied_exact"]
    assert lv["off_layers"] == 0 and not lv["off_checked"]


def test_styles_switch_in_one_click_and_pickers_group_and_search_models(gui):
    out, prof = gui
    assert "error" not in out, out.get("error")
    r = out["styles"]
    # Style files live in Krita's resource folder (the profile's data folder here).
    assert r["folder"] == str(prof.data / "krita" / "dreamwire" / "styles")
    assert r["styles"][:3] == ["No style", "SD1.5", "SDXL"]  # the tiny SD1 and SDXL models
    # No Flux model in this library: the shipped Flux style says so.
    assert "Flux (checkpoint missing)" in r["styles"]
    assert "Ink" in r["styles"] and "Gone (checkpoint missing)" in r["styles"]
    # A broken file is named under the combo and skipped; the docker works on.
    text, shown = r["problems"]
    assert shown and text.startswith("1 style file skipped: broken.json: 'steps' must be")
    assert not any(s.startswith("Broken") for s in r["styles"])
    # One click: the style's checkpoint, sampler, steps and CFG.
    assert r["ink"] == ["tiny-sdxl", "Euler a", 3, 4.5]
    lora = r["loras"][0]
    # Its template takes the prompt, its LoRA follows as a tag, its negative is appended;
    # the panel's prompt stays the artist's.
    assert r["ink_job"] == [f"ink drawing of a cat <lora:{lora}:0.5>", "dogs, colour", "a cat"]
    model, message, style = r["gone"]
    assert model == "tiny-sdxl" and style == "Gone"
    assert "'deleted-model' is not on the backend; the model is unchanged" in message
    assert r["saved"] == [True, "Mine", ["tiny-sd1"], 5] and r["deleted"] == [False, ""]
    # The model list: family headers (not pickable), each model under its family, what a
    # model lacks as its tooltip; nothing can be typed into it.
    header = None
    for text, enabled, tip in r["models"]:
        if not enabled:
            header = text
            continue
        assert header is not None and tip.startswith("Missing:") == (text in r["missing"])
        if text in ("tiny-sd1", "tiny-sdxl"):
            assert header.startswith({"tiny-sd1": "SD1.x (", "tiny-sdxl": "SDXL ("}[text])
    assert not r["editable"]
    # Typing "xl" from tiny-sd1 offers the SDXL model; Enter picks it; an unknown name
    # changes nothing.
    assert "tiny-sdxl" in r["search"] and "tiny-sd1" not in r["search"]
    assert r["searched"] == [r["search"][0], "tiny-sd1"] and r["unknown"] == r["searched"][0]
    # The LoRA picker lists the model's family's LoRAs (the welcome's lora_families) and
    # those of unknown family; All puts the others after them. It wrote one tag, then
    # gave it the new weight.
    assert "tiny_style" in r["loras"] and "tiny_xl_style" not in r["loras"]
    lists = r["lora_lists"]
    assert lists["model"] == "tiny-sdxl" and "tiny_xl_style" in lists["own"]
    assert not {"tiny_style", "tiny_peft", "lcm-lora-sdv1-5"} & set(lists["own"])
    assert lists["all"][: len(lists["own"])] == lists["own"]
    assert sorted(lists["all"]) == sorted(set(r["loras"]) | set(lists["own"]))
    assert r["lora_prompt"] == "a cat <lora:tiny_xl_style:0.4>"
    assert r["after"] == ["", False]
    assert r["settings_refused"] == [
        "The backend address must start with tcp:// or ipc://, e.g. tcp://127.0.0.1:5790",
        0,
    ]


def test_style_editor_duplicates_a_style_and_saves_it_to_the_combo_and_disk(gui):
    out, prof = gui
    assert "error" not in out, out.get("error")
    r = out["style_editor"]
    assert r["button"] == [True, True]  # beside the combo, in the style bar's line
    assert r["shown"] == ["SDXL", True, False]  # shipped: not deletable
    assert "tiny_xl_style" in r["lora_add"] and "tiny_style" not in r["lora_add"]
    assert r["copy"] == ["SDXL copy", "SDXL copy"]
    assert r["clash"][0] == "A style named 'SD1.5' exists already: pick another name."
    folder = prof.data / "krita" / "dreamwire" / "styles"
    assert r["saved"] == f"Saved 'SDXL copy' in {folder / 'sdxl-copy.json'}."
    assert r["file"]["name"] == "SDXL copy" and r["file"]["steps"] == 7
    assert r["file"]["family"] == "sdxl" and r["file"]["sampler"] == "DPM++ 2M"
    assert "SDXL copy" in r["combo"] and "SDXL" in r["combo"]  # the shipped one stays
    assert r["closed"] is False
    assert r["picked"] == [7, "tiny-sdxl"]  # one click: the copy's steps, its family's model


def test_wrap_around_makes_jobs_seamless_and_masked_content_is_per_workspace(gui):
    t = gui[0]["tiling"]
    assert t["checkable"]  # Krita's View > Wrap Around Mode
    # Off: the artist's toggle; on: ticked and locked, and the inpaint of a selection on
    # the tile's edge reads and generates the whole 96x64 tile, seamless both ways.
    assert t["off"] == [False, True] and t["on"] == [True, False] and t["after"] == [False, True]
    assert t["job"][:4] == ["inpaint", "both", 96, 64]
    assert t["params_seamless"] is False
    # Generate keeps its "latent nothing" (set before its inpaint), Live its own "fill".
    assert t["masked"] == ["latent nothing", "fill"] and t["job"][4] == "latent nothing"
    assert json.loads(t["masked_setting"])["live"] == "fill"


def test_depth_library_places_hands_into_one_depth_group_by_max(gui):
    r = gui[0]["depth_library"]
    assert r["shown"] and r["categories"][:2] == ["hands", "poses"], r
    assert r["problems"].startswith("1 file skipped: props/broken.png: "), r["problems"]
    assert r["selected"] == [True, True]
    # A new group marked as depth, each hand a Lighten layer in it (Krita's max).
    assert r["group"] == ["Depth library", "grouplayer", True], r["message"]
    assert r["children"] == [["Depth: open right", "lighten"], ["Depth: fist right", "lighten"]]
    assert r["mark"] == "depth" and "depth" in r["units"]
    # The group shows exactly the logic's max composite: changed where a hand went, nearer
    # winning where the two overlap, transparent elsewhere.
    assert r["overlap"] > 0 and r["changed_where_placed"]
    assert r["exact"], r["max_diff"]
    # The second placement is one undoable step; the artist's layer stayed active.
    assert r["after_undo"] == ["Depth: open right"]
    assert r["active"][0] == r["active"][1]
    # Onto an active depth paint layer: merged by max, the layer keeps its name and mark.
    m = r["merge"]
    assert m["merged"] == ["depth paint", True, "depth"], m["message"]
    assert m["exact"] and m["changed"] and m["left_over"] == []
    # Two undo steps (Krita 5.1 scripting writes pixels without undo): the merge, then the
    # Lighten layer; the original layer comes back unchanged.
    assert m["undo"][0] == ["depth paint", "Depth: pointing right"], m["undo"]
    assert "Depth: pointing right" not in m["undo"][1] and m["restored"], m["undo"]
