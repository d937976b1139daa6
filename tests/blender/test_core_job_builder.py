"""Scene settings to Job, and plain sentences about what the backend lacks (no Blender)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.job_builder import (
    REFERENCE,
    REFERENCE_MAX_SIDE,
    REFERENCE_MODES,
    ControlSetting,
    GenerationSettings,
    ReferenceSetting,
    build_job,
    fit_to_backend,
    missing_on_backend,
    plan_controls,
    reference_defaults,
    reference_rgb,
    round_size,
)
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.events import Welcome
from dreamwire.shared.job import Job


def settings(**kw):
    base = dict(
        prompt="stone wall",
        negative="blurry",
        model="tiny-sd1",
        sampler="Euler a",
        steps=3,
        cfg=5.0,
        seed=42,
        width=64,
        height=64,
        controls=[
            ControlSetting("depth", True, 0.8),
            ControlSetting("normals", True, 0.5, 0.1, 0.9),
            ControlSetting("pose", False, 1.0),
            ControlSetting("colour", True, 0.0),
        ],
    )
    base.update(kw)
    return GenerationSettings(**base)


def test_job_carries_settings_and_enabled_controls():
    depth = np.zeros((64, 64, 3), np.uint8)
    normals = np.full((64, 64, 3), 127, np.uint8)
    job = build_job(settings(), {"depth": depth, "normals": normals, "pose": depth})
    assert (job.prompt, job.negative, job.model, job.sampler) == (
        "stone wall",
        "blurry",
        "tiny-sd1",
        "Euler a",
    )
    assert (job.steps, job.cfg, job.seed, job.width, job.height) == (3, 5.0, 42, 64, 64)
    assert [(c.type, c.weight, c.start, c.end) for c in job.controls] == [
        ("depth", 0.8, 0.0, 1.0),
        ("normalbae", 0.5, 0.1, 0.9),
    ]
    assert job.controls[1].image is normals
    assert job.mode == "txt2img" and job.seamless == "none"


def test_seamless_inpaint_and_colour_as_init():
    col = np.full((64, 64, 3), 50, np.uint8)
    s = settings(colour_as_init=True, seamless=True)
    s.controls[3].weight = 1.0
    job = build_job(s, {"colour": col})
    assert job.init_image is col and job.mode == "img2img" and job.seamless == "both"
    mask = np.zeros((64, 64), np.uint8)
    job = build_job(settings(), {}, init_image=col, mask=mask, strength=0.6)
    assert job.mode == "inpaint" and job.strength == 0.6


def test_masked_content_goes_into_inpaint_jobs_only():
    init = np.full((64, 64, 3), 50, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    # A1111's default, and the Job's: the panel starts where the backend does.
    assert GenerationSettings().inpaint_fill == Job().inpaint_fill == "original"
    assert build_job(settings(), {}, init_image=init, mask=mask).inpaint_fill == "original"
    for mode in ("fill", "original", "latent noise", "latent nothing"):
        job = build_job(settings(inpaint_fill=mode), {}, init_image=init, mask=mask)
        assert Job.from_wire(*job.to_wire()).validate().inpaint_fill == mode
    # No mask, nothing for it to act on: txt2img and img2img jobs keep the default.
    s = settings(inpaint_fill="latent noise")
    assert build_job(s).inpaint_fill == "original"
    assert build_job(s, {}, init_image=init).inpaint_fill == "original"
    with pytest.raises(DreamwireError, match="masked content"):
        build_job(settings(inpaint_fill="latent something"), {}, init_image=init, mask=mask)


def test_sizes_round_to_multiples_of_eight_and_bad_values_are_refused():
    assert round_size(61) == 64 and round_size(3) == 8
    job = build_job(settings(width=100, height=70))
    assert (job.width, job.height) == (104, 72)
    with pytest.raises(DreamwireError, match="steps"):
        build_job(settings(steps=0))


def test_missing_on_backend_names_what_is_missing():
    w = Welcome(
        protocol=1,
        server_version="x",
        server_id="s",
        models=[{"name": "tiny-sd1"}],
        samplers=["Euler a", "DPM++ 2M Karras"],
        controlnets=[{"name": "control_v11f1p_sd15_depth", "type": "depth"}],
    )
    assert missing_on_backend(settings(controls=[ControlSetting("depth", True)]), w) == []
    problems = missing_on_backend(settings(model="sdxl-base", sampler="Heun"), w)
    assert "The backend has no model named 'sdxl-base'." in problems
    assert "The backend does not know the sampler 'Heun'." in problems
    assert any("Normals control needs a 'normalbae' ControlNet" in p for p in problems)
    # Disabled or zero-weight controls are not required.
    assert not any("Pose" in p or "Colour" in p for p in problems)


# -- Reference image (IP-Adapter unit) ---------------------------------------------------
def welcome_with(served: dict, missing: dict | None = None, families=None) -> Welcome:
    """A welcome as the backend sends it (shared/PROTOCOL.md): control_types and
    control_missing per family, model_families for the checkpoints."""
    return Welcome.from_body(
        {
            "protocol": 1,
            "server_version": "x",
            "server_id": "s",
            "models": [{"name": "tiny-sd1"}, {"name": "tiny-sdxl"}],
            "samplers": ["Euler a"],
            "model_families": families or {"tiny-sd1": "sd1", "tiny-sdxl": "sdxl"},
            "default_model": "tiny-sd1",
            "control_types": served,
            "control_missing": missing or {},
        }
    )


def with_reference(pixels=None, **kw) -> GenerationSettings:
    s = settings(**kw)
    s.reference = ReferenceSetting("Style", pixels=pixels)
    return s


def test_reference_goes_as_an_ip_adapter_unit_with_krita_reference_defaults():
    ref = np.full((40, 30, 3), 200, np.uint8)
    # Krita AI Diffusion's Reference preset: strength 0.8 over 0.2-0.8.
    assert (ReferenceSetting().weight, ReferenceSetting().start, ReferenceSetting().end) == (
        0.8,
        0.2,
        0.8,
    )
    depth = np.zeros((64, 64, 3), np.uint8)
    job = build_job(with_reference(ref), {"depth": depth})
    assert [(c.type, c.weight, c.start, c.end) for c in job.controls] == [
        ("depth", 0.8, 0.0, 1.0),
        ("ip-adapter", 0.8, 0.2, 0.8),
    ]
    unit = job.controls[-1]
    assert unit.image is ref and unit.model == "" and unit.preprocessor == "none"
    # Through the wire and the backend's validation as sent.
    back = Job.from_wire(*job.to_wire()).validate()
    assert back.controls[-1].type == "ip-adapter"
    assert np.array_equal(back.controls[-1].image, ref)
    # A texture (no captures), an img2img frame: the reference still goes with each.
    init = np.zeros((64, 64, 3), np.uint8)
    assert [c.type for c in build_job(with_reference(ref)).controls] == ["ip-adapter"]
    job = build_job(with_reference(ref), {}, init_image=init, strength=0.5)
    assert job.mode == "img2img" and [c.type for c in job.controls] == ["ip-adapter"]
    # No image chosen, weight 0, or left out for the backend: no unit.
    assert build_job(settings(), {}).controls == []
    s = with_reference(ref)
    s.reference.weight = 0.0
    assert build_job(s).controls == []
    s = with_reference(ref)
    s.skip = {REFERENCE}
    assert build_job(s).controls == []


def test_reference_modes_send_krita_ai_diffusions_types_and_defaults():
    ref = np.full((8, 8, 3), 9, np.uint8)
    # Krita AI Diffusion's presets per mode (as the Krita plugin's logic/controls.py).
    assert reference_defaults("reference") == (0.8, 0.2, 0.8)
    assert reference_defaults("style") == (0.8, 0.2, 1.0)
    assert reference_defaults("composition") == (0.8, 0.0, 0.8)
    sent = {}
    for mode in REFERENCE_MODES:
        s = with_reference(ref)
        s.reference.mode = mode
        s.reference.weight, s.reference.start, s.reference.end = reference_defaults(mode)
        (unit,) = build_job(s).controls
        Job.from_wire(*build_job(s).to_wire()).validate()  # the backend takes each type
        sent[mode] = (unit.type, unit.weight, unit.start, unit.end)
    assert sent == {
        "reference": ("ip-adapter", 0.8, 0.2, 0.8),
        "style": ("ip-adapter-style", 0.8, 0.2, 1.0),
        "composition": ("ip-adapter-composition", 0.8, 0.0, 0.8),
    }


def test_a_reference_mode_the_backend_cannot_run_is_left_out_by_its_name():
    ref = np.full((8, 8, 3), 9, np.uint8)
    # SDXL here has the plain adapter but no style blocks (as control_types lists them).
    served = {"sdxl": {"depth": "u", "ip-adapter": "a", "ip-adapter-composition": "a"}}
    missing = {"sdxl": {"ip-adapter-style": "no style IP-Adapter for SDXL (add one)"}}
    w = welcome_with(served, missing)
    s = with_reference(ref, model="tiny-sdxl", controls=[ControlSetting("depth", True)])
    assert fit_to_backend(s, w) == "" and plan_controls(s, w).used == ["depth", REFERENCE]
    s.reference.mode = "style"
    plan = plan_controls(s, w)
    assert plan.used == ["depth"] and plan.skipped == {
        REFERENCE: missing["sdxl"]["ip-adapter-style"]
    }
    note = fit_to_backend(s, w)
    assert note.startswith("Left out Style (") and "no style IP-Adapter for SDXL" in note
    job = build_job(s, {"depth": np.zeros((64, 64, 3), np.uint8)})
    assert [c.type for c in job.controls] == ["depth"]
    s.reference.mode = "composition"
    assert fit_to_backend(s, w) == "" and build_job(s).controls[0].type == "ip-adapter-composition"


def test_reference_pixels_from_an_image_array():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 100
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # transparent: white, as Krita flattens a Reference layer
    rgba[0, 1, 3] = 128
    out = reference_rgb(rgba)
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    assert out[1, 1].tolist() == [100, 0, 0]
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [round(100 * 128 / 255 + 255 * 127 / 255)] + [127] * 2
    assert reference_rgb(rgba[..., :3]).tolist() == rgba[..., :3].tolist()
    # A large picture is box-averaged below the size limit (the encoder reads 224 px).
    assert REFERENCE_MAX_SIDE == 1024
    big = np.zeros((2100, 10, 3), np.uint8)  # 3x too tall: 3x3 boxes, the last column cut
    big[1::3] = 255  # one row in three
    small = reference_rgb(big)
    assert small.shape == (700, 3, 3) and np.all(small == 85)
    with pytest.raises(ValueError, match="no pixels"):
        reference_rgb(np.zeros((0, 0, 4), np.uint8))


# -- What the backend can serve: control_types per family -------------------------------
SDXL_MISSING = {
    "seg": "no seg ControlNet, T2I-Adapter or Union model for SDXL in the ControlNet folders "
    "(e.g. controlnet-union-sdxl-1.0_promax.safetensors)",
    "ip-adapter": "no IP-Adapter for SDXL in the ControlNet or ipadapter folders "
    "(e.g. ip-adapter_sdxl_vit-h.safetensors)",
}
SERVED = {
    "sd1": {
        t: "f"
        for t in ("depth", "normalbae", "openpose", "seg", "tile", "ip-adapter", "canny", "color")
    },
    "sdxl": {"depth": "u", "normalbae": "u", "openpose": "u", "tile": "u"},
}


def test_controls_the_backend_cannot_serve_for_the_model_are_left_out_with_one_note():
    ref = np.full((8, 8, 3), 9, np.uint8)
    w = welcome_with(SERVED, {"sd1": {}, "sdxl": SDXL_MISSING})
    controls = [
        ControlSetting("depth", True),
        ControlSetting("segmentation", True, 0.5),
        ControlSetting("pose", False),
    ]
    caps = {n: np.zeros((64, 64, 3), np.uint8) for n in ("depth", "segmentation", "pose")}
    # SD1: everything it asks for is there.
    s = with_reference(ref, model="tiny-sd1", controls=controls)
    assert fit_to_backend(s, w) == "" and s.family == "sd1" and s.skip == set()
    assert [c.type for c in build_job(s, caps).controls] == ["depth", "seg", "ip-adapter"]
    # SDXL: no seg ControlNet, no IP-Adapter: left out, the rest runs.
    s = with_reference(ref, model="tiny-sdxl", controls=controls)
    plan = plan_controls(s, w)
    assert plan.known and plan.family == "sdxl"
    assert plan.used == ["depth"] and list(plan.skipped) == ["segmentation", REFERENCE]
    note = fit_to_backend(s, w)
    assert s.family == "sdxl" and s.skip == {"segmentation", REFERENCE}
    assert [c.name for c in s.enabled_controls()] == ["depth"]  # nothing captured for seg
    job = build_job(s, caps)
    assert [c.type for c in job.controls] == ["depth"]
    # One sentence naming each left-out control and the file that would serve it.
    assert note.startswith("Left out Segmentation, Reference (")
    assert "SDXL models" in note
    assert "controlnet-union-sdxl-1.0_promax.safetensors" in note
    assert "ip-adapter_sdxl_vit-h.safetensors" in note
    # The precheck no longer refuses the action for them.
    assert missing_on_backend(s, w) == []


def test_colour_as_init_needs_no_tile_model_and_an_unnamed_reason_still_reads():
    w = welcome_with({"sd1": {"depth": "f"}}, {"sd1": {}})
    s = settings(
        model="tiny-sd1",
        colour_as_init=True,
        controls=[ControlSetting("depth", True), ControlSetting("colour", True)],
    )
    plan = plan_controls(s, w)
    assert plan.used == ["depth"] and plan.skipped == {}
    s.colour_as_init = False
    plan = plan_controls(s, w)
    assert plan.skipped == {"colour": "the backend has no tile model"}


def test_a_backend_that_does_not_say_gets_every_control_and_the_old_precheck():
    """An older backend (no control_types), or a family it does not list: nothing is left
    out; the name-based check still tells of a missing ControlNet type before starting."""
    ref = np.full((8, 8, 3), 9, np.uint8)
    old = Welcome(
        protocol=1,
        server_version="x",
        server_id="s",
        models=[{"name": "tiny-sd1"}],
        samplers=["Euler a"],
        controlnets=[{"name": "control_v11f1p_sd15_depth", "type": "depth"}],
    )
    controls = [ControlSetting("depth", True), ControlSetting("segmentation", True)]
    s = with_reference(ref, controls=controls)
    plan = plan_controls(s, old)
    assert not plan.known and plan.skipped == {}
    assert plan.used == ["depth", "segmentation", REFERENCE]
    assert fit_to_backend(s, old) == "" and s.skip == set()
    assert any("Segmentation control needs a 'seg'" in p for p in missing_on_backend(s, old))
    other = welcome_with({"sdxl": {}}, families={"tiny-sd1": "sd1"})
    assert plan_controls(with_reference(ref, controls=controls), other).skipped == {}
    assert fit_to_backend(with_reference(ref), None) == ""


def test_face_control_goes_as_a_mediapipe_face_unit_and_is_left_out_where_not_served():
    """The panel's Face capture is a drawn map: a `mediapipe_face` unit with no
    preprocessor; a family without ControlNetMediaPipeFace leaves it out naming the file."""
    face = np.zeros((64, 64, 3), np.uint8)
    face[20, 10:50] = (10, 200, 10)  # a line of the face oval
    controls = [ControlSetting("face", True, 0.7, 0.0, 0.8), ControlSetting("depth", True)]
    s = settings(controls=controls)
    job = build_job(s, {"face": face, "depth": face})
    assert [(c.type, c.weight, c.end, c.preprocessor) for c in job.controls] == [
        ("mediapipe_face", 0.7, 0.8, "none"),
        ("depth", 1.0, 1.0, "none"),
    ]
    assert job.controls[0].image is face
    missing = {"mediapipe_face": "no mediapipe_face ControlNet for SDXL in the ControlNet folders"}
    served = {"sd1": {"mediapipe_face": "control_v2p_sd15_mediapipe_face", "depth": "d"}}
    w = welcome_with({**served, "sdxl": {"depth": "d"}}, {"sdxl": missing})
    assert plan_controls(settings(controls=controls), w).skipped == {}
    xl = settings(model="tiny-sdxl", controls=controls)
    assert fit_to_backend(xl, w).startswith("Left out Face (") and xl.skip == {"face"}
    assert [c.type for c in build_job(xl, {"face": face, "depth": face}).controls] == ["depth"]
