"""The add-on in real Blender (the `bpy` module, headless) against a real backend process.

Each scenario runs in its own process (bpy loads once per process): tests/blender/scenario.py
installs the built zip into a private Blender user folder, enables it, builds a scene,
runs operators and writes a JSON report that the tests here judge.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess

# Only look for bpy here: importing it would start Blender inside the test process.
pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module"),
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """Built once with the real build command (pyzmq wheels cached under build/)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(ROOT / "blender_addon" / "build.py"), "--out", str(out)],
        check=True,
        cwd=ROOT,
    )
    return out / "dreamwire-0.1.0.zip"


@pytest.fixture
def backend(blender_backend):
    return blender_backend


def run_scenario(
    name: str, addon_zip: Path, tmp_path: Path, backend=None, timeout=600, **extra
) -> dict:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cfg = {
        "scenario": name,
        "zip": str(addon_zip),
        "user_dir": str(tmp_path / "blender-user"),
        "site_packages": sysconfig.get_paths()["purelib"],
        "out": str(out),
        "result": str(tmp_path / "result.json"),
        "address": backend.address if backend else "tcp://127.0.0.1:9",
        "backend_out": str(backend.out_dir) if backend else str(tmp_path),
        **extra,
    }
    cfg_path = tmp_path / "scenario.json"
    cfg_path.write_text(json.dumps(cfg))
    proc = subprocess.run(
        [sys.executable, "-S", str(HERE / "scenario.py"), str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    result_path = tmp_path / "result.json"
    assert result_path.exists(), (
        f"scenario wrote no result:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    result = json.loads(result_path.read_text())
    assert result["ok"], result.get("traceback", "") + proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = result["checks"]
    # What every scenario installed: the zip's own dreamwire.shared and pyzmq wheels.
    assert checks["install"] == ["FINISHED"] and checks["enabled"]
    assert "/extensions/.local/" in checks["shared_from"], checks["shared_from"]
    assert checks["zmq_wheel_installed"]
    return checks


def test_blenders_own_validator_accepts_the_zip(addon_zip):
    """The checks extensions.blender.org and `blender --command extension validate` run."""
    spec = importlib.util.find_spec("bpy")
    roots = list(spec.submodule_search_locations or [Path(spec.origin).parent])
    cli = next(Path(roots[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    proc = subprocess.run(
        [sys.executable, str(cli), "validate", str(addon_zip)], capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "FATAL_ERROR" not in out, out


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def installed(addon_zip, tmp_path_factory) -> dict:
    """The install scenario, which also starts a local backend (one that is not there, one
    that sleeps) and quits as Blender does."""
    tmp_path = tmp_path_factory.mktemp("install")
    return run_scenario(
        "install",
        addon_zip,
        tmp_path,
        missing_command=str(tmp_path / "no-such-dreamwire"),
        sleeper_command=f'{sys.executable} -c "import time; time.sleep(60)"',
    )


def test_install_enable_and_settings_saved_with_the_blend(installed):
    c = installed
    for op in (
        "generate_texture",
        "project",
        "project_multiview",
        "render_animation",
        "upscale_image",
        "cancel",
        "start_backend",
        "show_backend_log",
    ):
        assert op in c["operators"]
    assert c["panels"] == [True, True]
    drawn = c["drawn"]
    props_drawn = {name for kind, name in drawn["idle"] if kind == "prop"}
    assert {
        "prompt",
        "negative",
        "model",
        "sampler",
        "steps",
        "cfg",
        "seed",
        "width",
        "height",
        "multiview_strength",
        "inpaint_fill",
        "two_pass",
        "reference_image",
        "reference_mode",
        "reference_weight",
        "fill_distance",
        "fill_inpaint",
    } <= props_drawn
    assert {"enabled", "weight"} <= props_drawn  # the controls with their weights
    assert {"colour_match", "colour_match_method", "facing_exponent", "edge_feather"} <= props_drawn
    ops_drawn = {name for kind, name in drawn["idle"] if kind == "operator"}
    assert {
        "dreamwire.generate_texture",
        "dreamwire.project",
        "dreamwire.project_multiview",
        "dreamwire.render_animation",
    } <= ops_drawn
    assert ["label", "Backend: disconnected"] in drawn["idle"]
    assert ["operator", "dreamwire.cancel"] in drawn["running"] and ["progress", 0.5] in drawn[
        "running"
    ]
    assert ["label", "failed text"] in drawn["failed"]
    assert {"address", "server_public_key", "client_key_file", "backend_command"} <= {
        n for k, n in drawn["prefs"] if k == "prop"
    }
    assert ["operator", "dreamwire.show_backend_log"] in drawn["prefs"]
    assert c["orbit"] == ["FINISHED"] and len(c["orbit_aims"]) == 3
    assert min(c["orbit_aims"]) > 0.9999  # every orbit camera looks at the selection's centre
    assert c["after_reset"] == ""
    assert c["reloaded"] == ["saved prompt", 7, True, 0.4, True, "latent noise"]


def test_generate_texture_puts_the_generated_image_on_a_new_material(addon_zip, tmp_path, backend):
    c = run_scenario("generate_texture", addon_zip, tmp_path, backend)
    assert c["error"] is None and c["result"] == ["FINISHED"]
    assert c["has_texture"] and c["linked"]
    assert c["backend_images"] >= 1
    assert c["texture_equals_generated"] == 0  # max abs difference to the backend's PNG
    assert c["png_written"]
    assert c["preview"] and c["preview"][0] > 0  # live previews arrived while it ran
    assert [j[0] for j in c["jobs"]["texture Wall"]] == ["txt2img"] and c["seamless"] == "both"
    assert "tiny-sd1" in c["model_search"] and "Euler a" in c["sampler_search"]
    assert "Backend: connected" in c["panel_labels_connected"]
    # The reference image went as an IP-Adapter unit with Krita AI Diffusion's Reference
    # defaults, and the backend ran it: the infotext's ControlNet entry names the IP-Adapter
    # file its welcome said serves the type for SD1 ("<adapter> + <CLIP vision encoder>").
    assert c["reference_defaults"] == [0.8, 0.2]
    assert [(u["type"], u["weight"], u["start"], u["end"]) for u in c["reference_job"]] == [
        ("ip-adapter", 0.8, 0.2, 0.8)
    ]
    adapter = c["served_sd1"]["ip-adapter"].split(" + ")[0]
    assert adapter.startswith("ip-adapter") and adapter.endswith("_sd15"), adapter
    assert f'ControlNet 0: "Module: none, Model: {adapter} [' in c["reference_infotext"]
    assert "Guidance Start: 0.2, Guidance End: 0.8" in c["reference_infotext"]
    # The panel lists what the generations use (Depth is on by default).
    assert "Uses: Depth, Reference" in c["panel_labels_connected"]


def test_upscale_image_and_generated_texture(addon_zip, tmp_path, backend):
    c = run_scenario("upscale", addon_zip, tmp_path, backend)
    assert c["generate"] == [["FINISHED"], None] and c["recorded_seamless"] == "both"
    # The N-panel path: the active object's texture, seamless as it was generated.
    assert c["texture_upscale"] == [["FINISHED"], None]
    assert c["texture_name"] == "Dreamwire Wall (Upscaled)"  # the node now shows the result
    assert c["texture_size"] == [2 * c["source_size"][0], 2 * c["source_size"][1]]
    assert c["texture_vs_backend"] == 0  # the backend's upscale, pixel for pixel
    assert c["texture_job_seamless"] == "both" and c["new_recorded"] == "both"
    assert c["texture_job_upscale"]["scale"] == 2.0 and not c["texture_job_upscale"]["refine"]
    assert c["source_unchanged"]
    assert "Dreamwire_Wall_upscaled.png" in c["pngs"], c["pngs"]
    # Any image, refined, with a model upscaler named in the backend's welcome.
    assert c["upscaler_search"] == ["tiny-compact-x4"]
    assert c["photo_upscale"] == [["FINISHED"], None]
    assert c["photo_size"] == [72, 60] and c["photo_vs_backend"] == 0
    assert c["photo_job_seamless"] == "none" and c["photo_job_strength"] == 0.5
    assert c["photo_job_upscale"]["upscaler"] == "tiny-compact-x4"
    assert c["photo_job_upscale"]["refine"] is True
    assert "no upscaler named '4x-Missing'" in c["missing"]
    assert "no image named 'No such'" in c["nothing"]


def test_project_bakes_visible_faces_and_masks_occluded_and_grazing(addon_zip, tmp_path, backend):
    c = run_scenario("project", addon_zip, tmp_path, backend)
    assert c["error"] is None and c["result"] == ["FINISHED"]
    assert c["uv_before"] == 0 and c["uv_after"] == 1  # UVs created by Smart UV Project
    assert c["has_texture"] and c["blocker_untouched"]
    assert c["view_is_generated"] == 0
    # Texels of the front face carry the generated image's colour at the pixel Blender's own
    # world_to_camera_view projects them to (bilinear; a few levels for texel quantisation).
    assert c["front_alpha"] == 255
    assert max(c["front_diffs"]) < 40, c["front_diffs"]
    assert c["front_mean_diff"] < 12 and c["mirrored_mean_diff"] > 2 * c["front_mean_diff"], c
    assert c["back_alpha"] == 0
    assert c["occluded_alpha"] == 0
    assert c["grazing_alpha"] == 0
    assert 0.02 < c["coverage"] < 0.6
    assert c["png_written"]
    # With filling off, the report beside the PNG says what the view left empty.
    r = c["coverage_report"]
    assert r["dilated"] == r["inpainted"] == 0 and 0.02 < r["covered"] < 0.6
    assert abs(r["covered"] + r["empty"] - 1) < 1e-9
    assert c["jobs"]["project Cam"] == [["txt2img", 1234, ["depth", "normalbae", "tile"]]]
    for name in ("Dreamwire depth", "Dreamwire normals", "Dreamwire colour", "Dreamwire view"):
        assert name in c["capture_images"]  # what was sent is visible in Blender


def test_multiview_covers_more_and_inpaints_later_views(addon_zip, tmp_path, backend):
    c = run_scenario("multiview", addon_zip, tmp_path, backend)
    assert c["single_error"] is None
    assert c["error"] is None and c["result"] == ["FINISHED"], c
    assert c["jobs"] == 4  # three views and the UV inpaint pass
    single, multi = c["single_report"], c["report"]
    assert single["empty"] > 0.4 and single["dilated"] == single["inpainted"] == 0
    assert multi["covered"] > single["covered"] * 1.8
    fa = {int(k): v for k, v in c["face_alpha"].items()}
    assert all(fa[f] == 255 for f in range(6)), fa
    # No camera sees the back face: it is filled (by the UV inpaint pass: the fill distance
    # is short), and the report counts it as filled, not covered; nothing is left empty.
    assert c["back_vs_fill_result"] <= 1
    assert multi["empty"] == 0 and multi["inpainted"] > 0 and multi["dilated"] > 0
    assert multi["filled"] >= 1 / 6 and multi["covered"] <= 5 / 6
    assert abs(multi["covered"] + multi["filled"] - 1) < 1e-9
    assert "empty 0%" in c["status"], c["status"]
    # Colour matching, facing^3 and edge feathering are on by default; turning matching
    # off (same seeds, same generated views) changes how the later views blend in.
    assert c["colour_defaults"] == [True, 3.0, 3.0]
    assert c["unmatched_error"] is None
    assert c["match_changed_share"] > 0.1 and c["match_mean_diff"] > 1.0, c
    assert c["mask_values"] == [0, 255]
    # The panel's Masked content reached the backend with the inpainting views only.
    assert c["masked_content"] == {
        "View0": "original",
        "View1": "latent noise",
        "View2": "latent noise",
    }
    modes = {tag: [j[0] for j in v] for tag, v in c["job_records"].items()}
    assert modes["project View1"] == ["inpaint"] and modes["project View2"] == ["inpaint"]
    assert modes["fill Target"] == ["inpaint"]
    assert (
        modes["project View0"].count("txt2img") == 2
    )  # single projection + first multi-view  # later views keep what is covered, inpaint the rest


def test_cameras_by_coverage_and_view_aware_prompts(addon_zip, tmp_path, backend):
    c = run_scenario("autocams", addon_zip, tmp_path, backend)
    assert c["add_result"] == [["FINISHED"], None]
    assert c["collection_in_scene"]
    # Four cameras asked for; a cube on the ground is covered by up to five (four sides
    # and the top), so all four are placed, shown, listed and aimed at the crate.
    assert c["added"] == [f"DW Coverage {i}" for i in range(1, 5)]
    assert c["listed"] == c["added"] and all(c["visible"])
    assert min(c["aims"]) > 0.999, c["aims"]
    assert min(c["heights"]) >= -1e-6, c["heights"]  # upper half only: none below
    assert c["floor_untouched"]
    assert {"dreamwire.add_coverage_cameras", "auto_cameras", "auto_camera_count"} <= set(
        c["drawn"]
    )
    assert {"auto_camera_hemisphere", "view_prompts", "view_front", "view_bottom"} <= set(
        c["drawn"]
    )
    # Multi-view with nothing listed placed its own three, and each job's prompt names
    # the side of the (turned) crate its camera sees, with the artist's phrase for front.
    assert c["auto_result"] == [["FINISHED"], None], c
    assert c["auto_cameras"] == ["DW Auto 1", "DW Auto 2", "DW Auto 3"]
    assert c["auto_textured"]
    jobs = c["auto_jobs"]
    assert 2 <= len(jobs) <= 3 and set(jobs) <= {f"project DW Auto {i}" for i in (1, 2, 3)}
    for prompt, phrase in jobs.values():
        assert prompt == f"weathered stone, {phrase}", jobs
    assert len({phrase for _, phrase in jobs.values()}) >= 2  # not one phrase for all
    # A listed camera is used as it is, nothing placed; world -Y is the turned crate's back.
    assert c["own_result"] == [["FINISHED"], None]
    assert c["own_jobs"] == {"project OwnCam": "weathered stone, back view"}
    assert c["auto_after_own"] == c["auto_cameras"]
    assert "Select the mesh objects to put cameras around" in c["bad"]["add_nothing"]
    assert "Select the mesh objects to project onto" in c["bad"]["auto_nothing"]
    assert "No viewpoint sees the selected meshes" in c["bad"]["unseen"]
    assert c["cameras_unchanged"]


def test_render_animation_writes_frames_and_resumes_after_a_stop(addon_zip, tmp_path, backend):
    c = run_scenario("animation", addon_zip, tmp_path, backend)
    assert c["stopped_state"] == "cancelled"
    assert c["after_stop"] == ["frame_0001.png"]
    assert c["frame_after_stop"] == 1
    assert c["error"] is None and c["result"] == ["FINISHED"]
    assert "Rendered 2 frames" in c["status"] and "1 already on disk" in c["status"]
    assert c["files"] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert c["first_unchanged"]
    assert c["frames_match_generated"] == [True, True, True]
    assert c["depth_images"] and c["depth_moved"] > 50
    assert c["pose_pixels"] > 30 and c["pose_moved"] > 30  # the skeleton was drawn, and it moved
    # Warp and inpaint (the resumed run did not redo frame 1), all with the same seed and
    # the frame's own controls: frame 1 from scratch; the others are the frame before moved
    # along Blender's vectors, the area the moving cube and rig uncovered inpainted, then
    # the light img2img refresh.
    assert c["mode_default"] == "fixed_seed"
    jobs = c["jobs"]
    controls = ["depth", "openpose"]
    assert jobs["frame 1"] == [["txt2img", c["seed"], controls]]
    for f in ("frame 2", "frame 3"):
        assert sorted(jobs[f]) == [
            ["img2img", c["seed"], controls],
            ["inpaint", c["seed"], controls],
        ]
    # Keyframes: key 1 from scratch, key 3 warped from key 1 (inpaint, refresh); frame 2
    # blended from both keys, so at most an inpaint of what neither sees.
    assert c["keys_result"] == [["FINISHED"], None]
    assert c["keys_files"] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]

    def modes(tag, records):
        return Counter(m for m, *_ in records.get(tag, []))

    added = {t: modes(t, c["jobs_after_keys"]) - modes(t, jobs) for t in c["jobs_after_keys"]}
    assert added["frame 1"] == Counter(["txt2img"])
    assert added["frame 3"] == Counter(["img2img", "inpaint"])
    # Frame 2 (a cube only it shows) inpainted, as the in-betweens' group: a fan-out's
    # batch job, where the frames before it were the artist's interactive ones.
    assert added["frame 2"] == Counter(["inpaint"])
    assert [j for j in c["keys_in_between_jobs"] if j[1] == "batch"] == [["inpaint", "batch"]]
    assert "frame step to 1" in c["keys_step_error"]
    # AnimateDiff: one job of 3 frames, depth and pose each captured on all 3.
    assert "motion module" in c["ad_no_module"]
    assert c["ad_result"] == [["FINISHED"], None]
    assert c["ad_files"] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert c["ad_job"] == [3, [3, 3]]
    # Fixed seed: three frames as three jobs, each txt2img with the render's seed and its
    # own frame's controls; the rerun made only the frame deleted since.
    assert c["fixed_result"] == [["FINISHED"], None]
    assert c["fixed_rerun"] == [["FINISHED"], None]
    assert "Rendered 1 frames" in c["fixed_status"] and "2 already on disk" in c["fixed_status"]
    assert c["fixed_files"] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    seed = int(
        json.loads(Path(tmp_path, "out", "fixed", "dreamwire_animation.json").read_text())["seed"]
    )
    controls = ["depth", "openpose"]
    assert c["fixed_jobs"] == {
        "frame 1": [["txt2img", seed, controls, 1]],
        "frame 2": [["txt2img", seed, controls, 2]],
        "frame 3": [["txt2img", seed, controls, 1]],
    }
    assert c["frame_after_fixed"] == c["frame_after_stop"]  # the scene's frame put back


def test_face_control_sends_the_face_meshs_groups_as_a_mediapipe_face_unit(addon_zip, tmp_path):
    """Face on in the panel: Project's job carries the mesh's face_* groups drawn in the
    annotator's feature colours, as a map (no preprocessor); no such mesh: a clear message."""
    from dreamwire.shared.imaging import mediapipe_face as mp_face

    c = run_scenario("face", addon_zip, tmp_path)
    # The panel's Controls draw it beside Pose, with what it reads said under it.
    assert {"dreamwire.face.enabled", "dreamwire.face.weight"} <= set(c["panel"])
    assert len(c["face_hint"]) == 1
    assert c["units"] == [["mediapipe_face", "none", 0.6]]
    assert c["face_shape"] == [128, 128, 3] and c["face_image_stored"]
    bgr = {f.name: f.bgr for f in mp_face.FEATURES}
    drawn = {(r, g, b): n for r, g, b, n in c["face_colours"]}  # colour: pixels
    wanted = {bgr[name][::-1] for name in ("face_oval", "left_eye", "lips")}  # RGB out
    assert set(drawn) == wanted | {(0, 0, 0)}, drawn  # those three features, nothing else
    assert all(drawn[colour] > 10 for colour in wanted)
    assert "No face mesh to draw" in c["no_face"] and "face_oval" in c["no_face"]


def test_bad_input_gives_one_clear_message_and_changes_nothing(addon_zip, tmp_path, backend):
    c = run_scenario("bad_inputs", addon_zip, tmp_path, backend, dead_address=free_address())
    for key in (
        "no_camera",
        "nothing_selected",
        "no_uvs_texture",
        "no_uvs_project",
        "unknown_bones",
        "backend_down",
    ):
        assert c[key] and "Traceback" not in c[key], (key, c[key])
    assert "no camera" in c["no_camera"]
    assert "Select the mesh" in c["nothing_selected"]
    assert "has no UV map" in c["no_uvs_texture"] and "has no UV map" in c["no_uvs_project"]
    assert "Rig" in c["unknown_bones"]
    assert c["override_result"] == [["FINISHED"], None]  # per-bone overrides make the rig usable
    assert c["override_pose_pixels"] > 20
    # (the shared backend also holds the projection test's job with the same tag)
    assert ["txt2img", 1234, ["depth", "openpose"]] in c["override_jobs"]
    assert "no model named 'no-such-model'" in c["missing_on_backend"]
    assert "No Dreamwire backend answers" in c["backend_down"]
    assert c["state_unchanged"]
    assert c["uv_layers_after_failures"] == 0 and c["uv_layers_after_down"] == 0


def test_flux_model_takes_flux_settings_and_textures_with_distilled_cfg(
    addon_zip, tmp_path, backend
):
    c = run_scenario("flux", addon_zip, tmp_path, backend)
    # Picking the model switched to Forge's Flux preset; the artist's values then stay.
    assert c["switched"] == [20, 1.0, "Euler", 3.5] and c["kept"] == [2, 2.5]
    assert c["seamless_refused"].startswith("Error: Flux.1 models: seamless tiling")
    assert c["result"] == [["FINISHED"], None], c["status"]
    # Depth is on by default, and this library has no Flux ControlNet: left out with the
    # backend's reason (naming the file to add), not refused.
    assert "Left out Depth (the backend cannot run them for Flux.1 models" in c["status"]
    assert c["job_distilled"] == 2.5 and c["job_controls"] == []
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 1," in c["infotext"]
    assert "Distilled CFG Scale: 2.5" in c["infotext"] and "Steps: 2," in c["infotext"]
    assert c["texture"] == [64, 64] and c["texture_equals_generated"] == 0
    assert "distilled_cfg" in c["drawn"] and "seamless" in c["greyed"]
    # Edit Texture: greyed out and refused off an edit model, run on Kontext into a new
    # image the material's node now shows (the source kept).
    assert "dreamwire.edit_texture" in c["greyed"]
    assert "Edit Texture needs an edit model (Flux Kontext)" in " ".join(c["labels"])
    assert "needs an edit model (Flux Kontext)" in c["edit_refused"]
    assert not c["edit_greyed_on_kontext"]
    assert c["edit_result"][:2] == [["FINISHED"], None], c["edit_result"]
    assert c["edit_job"] == ["edit", "tiny-flux-kontext"]
    source, edited, size = c["edited"]
    assert edited == source + " (Edited)" and size == [64, 64] and c["source_kept"]
    assert c["edited_equals_result"] == 0
    assert "Depth: not available for Flux.1 models" in c["labels"]
    assert c["back"] == [2, 5.0, "Euler a"] and "distilled_cfg" not in c["sd_drawn"]


def test_backend_dying_mid_job_fails_cleanly(addon_zip, tmp_path, tiny_models):
    with BackendProcess([tiny_models], tmp_path / "dying") as proc:
        # Lost for 2 s after the client's heartbeat timeout is failed (test_core_tasks's value;
        # the scenario's default 6 s only makes the test wait longer for the same outcome).
        c = run_scenario(
            "backend_dies",
            addon_zip,
            tmp_path,
            proc,
            backend_pid=proc.pid,
            steps=60,
            lost_timeout=2,
        )
    assert c["killed"]
    assert c["state"] == "failed"
    assert "stopped answering" in c["message"]
    assert c["materials_unchanged"] and not c["texture"]
    assert c["uv_layers"] == 0  # the UV map made for the bake was taken back


def test_curve_keys_from_the_preferences(addon_zip, tmp_path, tiny_models):
    from dreamwire.backend.server.auth import write_key_pair

    keys = tmp_path / "keys"
    write_key_pair(keys / "server", "server")
    write_key_pair(keys / "artist", "artist")
    write_key_pair(keys / "stranger", "stranger")
    with BackendProcess(
        [tiny_models],
        tmp_path / "keyed",
        keys_dir=keys / "server",
        client_keys=[keys / "artist" / "artist.key"],
    ) as proc:
        c = run_scenario(
            "remote",
            addon_zip,
            tmp_path,
            proc,
            server_key=str(keys / "server" / "server.key"),
            client_key=str(keys / "artist" / "artist.key_secret"),
            bad_client_key=str(keys / "stranger" / "stranger.key_secret"),
        )
    assert "refused this client's key" in c["refused"] and not c["refused_material"], c
    assert c["error"] is None and c["result"] == ["FINISHED"] and c["has_texture"], c


def test_n_panel_is_collapsible_sub_panels_in_both_editors(addon_zip, tmp_path):
    c = run_scenario("panels", addon_zip, tmp_path)
    tree = {
        idname: (space, parent, options, label)
        for idname, space, parent, options, label, ok in c["panel_tree"]
    }
    assert all(row[-1] for row in c["panel_tree"])  # in bpy.types, on the Dreamwire tab
    order = [row[0] for row in c["panel_tree"]]
    sections = {
        "backend": "Backend",
        "prompt": "Prompt",
        "model": "Model and sampling",
        "controls": "Controls",
        "reference": "Reference",
        "texturing": "Texturing",
        "texturing_views": "Views",
        "animation": "Animation",
        "upscale": "Upscale",
    }
    for editor, space in (("view3d", "VIEW_3D"), ("image", "IMAGE_EDITOR")):
        root = f"DREAMWIRE_PT_{editor}"
        assert tree[root] == (space, "", [], "Dreamwire")
        for key, label in sections.items():
            idname = f"{root}_{key}"
            if editor == "image" and key == "animation":
                assert idname not in tree  # an animation renders from the 3D scene's camera
                continue
            got_space, parent, options, got_label = tree[idname]
            assert (got_space, got_label) == (space, label)
            assert parent == (f"{root}_texturing" if key == "texturing_views" else root)
            assert order.index(parent) < order.index(idname)  # registered parents first
    closed = {i for i, (_s, _p, options, _l) in tree.items() if "DEFAULT_CLOSED" in options}
    assert closed == {
        "DREAMWIRE_PT_view3d_reference",
        "DREAMWIRE_PT_view3d_animation",
        "DREAMWIRE_PT_view3d_upscale",
        "DREAMWIRE_PT_image_reference",
    }
    # Every setting is in some panel (the optional ones once switched on), each where it
    # goes; Distilled CFG shows for the families that take it (test_flux_model_... draws it).
    assert c["unreachable"] == ["distilled_cfg"]
    props, ops = c["panel_props"], c["panel_ops"]
    assert {"prompt", "negative"} == set(props["DREAMWIRE_PT_view3d_prompt"])
    assert {"grid_mode", "grid_layout", "inpaint_fill"} <= set(
        props["DREAMWIRE_PT_image_texturing_views"]
    )
    assert "dreamwire.project_multiview" in ops["DREAMWIRE_PT_view3d_texturing_views"]
    assert "dreamwire.upscale_image" in ops["DREAMWIRE_PT_image_upscale"]
    assert "dreamwire.render_animation" in ops["DREAMWIRE_PT_view3d_animation"]
    assert "dreamwire.train_lora_collection" in ops["DREAMWIRE_PT_view3d_model"]
    assert {"train_collection", "train_trigger"} <= set(props["DREAMWIRE_PT_view3d_model"])
    assert "dreamwire.show_preview" in ops["DREAMWIRE_PT_image"]
    assert "dreamwire.show_preview" not in ops["DREAMWIRE_PT_view3d"]
    locked = c["locked_while_running"]
    assert not locked["DREAMWIRE_PT_view3d_backend"] and locked["DREAMWIRE_PT_view3d_prompt"]
    assert c["after_disable"] == [] and c["after_enable"] == len(tree)


def test_grid_mode_generates_four_views_in_one_job_and_bakes_each(addon_zip, tmp_path, backend):
    c = run_scenario("grid", addon_zip, tmp_path, backend)
    assert c["state"] == ["finished", c["state"][1]], c["state"]
    assert c["expected_jobs"] == 1 and [j[:2] for j in c["jobs"]] == [[128, 128]]
    # The control images sent are the four cameras' captures (64 x 64 cells) tiled 2 x 2.
    assert c["sent"]["depth"] == [[128, 128, 3], 0] and c["sent"]["normalbae"] == [[128, 128, 3], 0]
    assert c["depth_cells_differ"] > 20 and c["normals_cells_differ"] > 20, c
    assert c["depth_image"] == [128, 128]
    # Each side face is seen by one camera: its texels hold that camera's cell of the
    # generated grid where Blender projects them, not the neighbouring cell's.
    assert c["right_mean_diff"] < 12 and c["wrong_mean_diff"] > 2 * c["right_mean_diff"], c
    fa = {int(k): v for k, v in c["face_alpha"].items()}
    assert [fa[f] for f in range(5)] == [255] * 5 and fa[5] == 0  # the bottom: no camera
    # Five views on a 2x2 layout: a second grid inpaints in its one used cell (the top
    # view) what the first left uncovered, keeps what it covered, and the empty cells.
    assert c["five_state"][0] == "finished" and c["five_state"][2] == 2, c["five_state"]
    assert c["five_jobs"] == [["txt2img", 128, 128], ["inpaint", 128, 128]]
    assert c["second_mask"][:2] == [255, 0] and c["second_mask"][2:] == [0, 0]


def test_project_with_pbr_maps_bakes_and_wires_them(addon_zip, tmp_path, backend):
    """Each view's Marigold maps, baked where its colour went and wired into the material."""
    c = run_scenario("pbr", addon_zip, tmp_path, backend)
    assert c["error"] is None and c["result"] == ["FINISHED"], c
    assert c["maps_sent_back"] == ["albedo", "metallic", "normal", "roughness"]
    assert c["links"] == {
        "Base Color": ["Dreamwire Target albedo", "sRGB"],
        "Roughness": ["Dreamwire Target roughness", "Non-Color"],
        "Metallic": ["Dreamwire Target metallic", "Non-Color"],
        "Normal": ["Dreamwire Target normal", "Non-Color", "OBJECT"],
    }
    assert c["pngs"] == [
        "Target_albedo.png",
        "Target_coverage.json",  # the unseen-texel fill's report
        "Target_metallic.png",
        "Target_normal.png",
        "Target_projected.png",
        "Target_roughness.png",
    ]
    # A front texel holds the map's value at the pixel the camera sees it at (a few levels
    # for texel quantisation: the tiny models' maps are noise, the normals' on all three
    # channels), the normal turned from the camera's frame into the cube's.
    diffs = c["map_diffs"]
    assert max(diffs["albedo"], diffs["roughness"], diffs["metallic"]) < 12, c
    assert diffs["normal"] < 25, c
    assert c["normal_unconverted_diff"] > 2 * diffs["normal"], c


def test_each_object_prompt_guides_its_own_pixels_as_a_region(addon_zip, tmp_path, backend):
    c = run_scenario("object_prompts", addon_zip, tmp_path, backend)
    assert c["result"] == [["FINISHED"], None], c["result"]
    assert c["region_prompts"] == ["rusty metal crate"]  # the other object has none
    assert c["second_result"] == [["FINISHED"], None]
    assert c["two_regions"] == ["rusty metal crate", "a wooden crate"]
    assert c["stored"] == "rusty metal crate"


def test_generate_texture_with_pbr_maps_makes_tiling_maps(addon_zip, tmp_path, backend):
    c = run_scenario("pbr_texture", addon_zip, tmp_path, backend)
    assert c["result"] == [["FINISHED"], None], c["result"]
    h, w = c["texture_size"]
    # The maps were made from the texture wrapped by a quarter on each side (seamless on).
    assert all(size == [h + 2 * (h // 4), w + 2 * (w // 4)] for size in c["maps_size"].values())
    assert c["albedo_is_middle"] <= 1
    assert c["links"]["Base Color"] == ["Dreamwire Tile albedo", "sRGB"]
    assert c["links"]["Roughness"] == ["Dreamwire Tile roughness", "Non-Color"]
    assert c["links"]["Normal"] == ["Dreamwire Tile normal", "Non-Color", "TANGENT"]


def test_local_backend_failure_stays_on_screen_and_quitting_stops_the_backend(installed):
    c = installed
    said = "Cannot start the local backend: command not found: "
    result, error = c["local_missing"]
    assert result is None and said in error and "no-such-dreamwire" in error
    # Drawn in the N-panel and the preferences, over the client's later error.
    assert any(label.startswith(said) for label in c["local_labels_idle"]), c
    assert "a later status from the client" not in c["local_labels_idle"]
    assert any(label.startswith(said) for label in c["local_labels_prefs"]), c
    assert c["local_started"] == [["FINISHED"], None] and c["local_cleared"] == ""
    assert c["local_running_before_quit"]
    assert c["local_exit_after_quit"] is not None  # stopped, not left running


def test_train_lora_from_collection_renders_a_turntable_and_trains(
    addon_zip, tmp_path, backend, tiny_models
):
    """Four 64 px views of the collection alone (a red cube outside it never shows),
    captioned trigger word, names, side; two steps on the tiny SD1. The shared backend
    writes the LoRA into the tiny library's first root: removed again, so the library the
    other tests see stays as it was."""
    try:
        c = run_scenario("train_collection", addon_zip, tmp_path, backend, lora_name="zxbot_turn")
        loras = [p.stat().st_size for p in tiny_models.glob("models/*/zxbot_turn.safetensors")]
    finally:
        for f in tiny_models.glob("models/*/zxbot_turn.*"):
            f.unlink(missing_ok=True)
    # The views alternate between two heights (15 and 35 degrees): the higher ones are
    # captioned "from above" as well.
    captions = [
        f"zxbot, robot, body, robot head, {side}"
        for side in ("front view", "side view, from above", "back view", "side view, from above")
    ]
    assert c["render_shapes"] == [[64, 64, 4]] * 4
    assert c["red_pixels"] == [0, 0, 0, 0], c["red_pixels"]
    assert all(n > 200 for n in c["object_pixels"]), c["object_pixels"]  # framed, not a dot
    assert c["crate_render_restored"]
    assert c["cameras_left"] == []  # the turntable camera is removed
    assert c["error"] is None and c["result"] == ["FINISHED"], c
    assert c["status"][0] == "finished" and "<lora:zxbot_turn:1>" in c["status"][1]
    job = c["job"]
    assert [p["caption"] for p in job["pictures"]] == captions
    assert job["max_train_steps"] == 2 and job["resolution"] == 64
    assert len(loras) == 1 and loras[0] > 0, loras
    assert c["sample"] == [64, 64]
    assert "no mesh objects" in c["empty"]
    assert "more pictures than one job may carry (32" in c["too_many"]
