"""Jobs built from docker parameters, result cropping, control layers, names, history."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dreamwire_krita.logic import controls, naming
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.history import History, params_from_infotext
from dreamwire_krita.logic.jobs import (
    crop_result,
    edit_job,
    generate_job,
    inpaint_job,
    layers_job,
    refine_job,
)
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import (
    PlanError,
    inpaint_inputs,
    plan_edit,
    plan_generate,
    plan_inpaint,
    plan_layers,
    plan_refine,
)
from dreamwire_krita.logic.settings import Settings, load, save

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import format_infotext
from dreamwire.shared.job import Job

CANVAS = Rect(0, 0, 100, 80)
P = Params(
    prompt="a red fox",
    negative="blurry",
    model="tiny-sd1",
    steps=3,
    cfg=5.0,
    seed=42,
    strength=0.5,
    batch=2,
)


def test_generate_job_carries_the_panel_and_plan():
    job = generate_job(P, plan_generate(CANVAS, None))
    assert (job.width, job.height) == (104, 80)
    assert (job.prompt, job.negative, job.model, job.seed, job.batch, job.steps) == (
        "a red fox",
        "blurry",
        "tiny-sd1",
        42,
        2,
        3,
    )
    assert job.mode == "txt2img" and job.preview_every > 0


def test_refine_job_flattens_the_region_over_white():
    plan = plan_refine(CANVAS, None)
    region = np.zeros((plan.region.h, plan.region.w, 4), np.uint8)
    job = refine_job(P, plan, region)
    assert job.mode == "img2img" and job.strength == 0.5
    assert job.init_image.shape == (80, 104, 3) and (job.init_image == 255).all()


def test_edit_job_sends_the_layer_and_the_instruction_over_the_selection():
    plan = plan_edit(CANVAS, Rect(10, 20, 30, 30))
    # The selection's bounds, snapped to a job-legal size inside the canvas; the result
    # lands on the selection, masked to its shape.
    assert plan.action == "edit" and plan.target == Rect(10, 20, 30, 30) and plan.masked
    assert plan.region.w % 8 == 0 and plan.region.h % 8 == 0
    layer = np.zeros((plan.region.h, plan.region.w, 4), np.uint8)
    layer[:, :8] = (200, 10, 10, 255)
    job = edit_job(replace(P, prompt="make the fox blue"), plan, layer, "flux")
    assert job.mode == "edit" and job.prompt == "make the fox blue"
    assert (job.width, job.height) == (plan.region.w, plan.region.h)
    # Painted pixels as they are, transparent ones over white (as refine flattens).
    assert (job.init_image[:, :8] == (200, 10, 10)).all() and (job.init_image[:, 8:] == 255).all()
    assert job.tag == "krita:edit" and not job.controls
    whole = plan_edit(CANVAS, None)
    assert whole.target == CANVAS and not whole.masked
    with pytest.raises(DreamwireError) as err:  # an edit needs its instruction
        edit_job(replace(P, prompt=" "), whole, np.zeros((80, 104, 4), np.uint8), "flux")
    assert err.value.code is ErrorCode.INVALID_PROMPT
    assert naming.layer_name("make it blue", 7, "edit") == "make it blue · DW edit 7"


def test_layers_job_sends_the_layer_its_caption_and_the_count():
    plan = plan_layers(CANVAS, None)
    assert plan.action == "layers" and plan.target == CANVAS and not plan.masked
    layer = np.zeros((plan.region.h, plan.region.w, 4), np.uint8)
    layer[:, :8] = (10, 200, 10, 255)
    job = layers_job(replace(P, prompt="a fox on a hill", batch=3), plan, layer, "qwen-image", 5)
    assert job.mode == "layers" and job.layer_count == 5 and job.batch == 1
    assert (job.init_image[:, :8] == (10, 200, 10)).all() and (job.init_image[:, 8:] == 255).all()
    assert job.tag == "krita:layers" and not job.controls
    with pytest.raises(DreamwireError) as err:
        layers_job(P, plan, layer, "qwen-image", 0)
    assert err.value.code is ErrorCode.INVALID_JOB
    # Named by their place in the stack, 1 the bottom.
    assert naming.stack_layer_name(0, 3) == "DW layer 1/3"


def test_inpaint_job_keeps_the_selection_feather_and_sizes_to_init():
    plan = plan_inpaint(CANVAS, Rect(60, 10, 40, 40))
    h, w = plan.region.h, plan.region.w
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:, : w - 20] = (10, 20, 30, 255)
    mask = np.zeros((h, w), np.uint8)
    mask[5:30, w - 30 :] = np.linspace(0, 255, 30).astype(np.uint8)  # a feathered edge
    job = inpaint_job(P, plan, inpaint_inputs(rgba, mask))
    assert job.mode == "inpaint" and job.mask_blur == 0
    assert (job.width, job.height) == (job.init_image.shape[1], job.init_image.shape[0])
    assert job.width + job.outpaint.right == w
    assert set(np.unique(job.mask)) - {0} and 0 < job.mask.max() <= 255
    # The graded values survive: the feather is the artist's, not re-blurred.
    assert len(np.unique(job.mask)) > 3
    Job.from_wire(*job.to_wire()).validate()


def test_outpaint_control_layers_arrive_canvas_sized_and_aligned():
    """The controller reads control layers over plan.region; when the selection reaches past
    the painted content, that region is the job's grown canvas (init image + outpaint), so
    each layer arrives canvas-sized (the backend then resizes it as the picture), with a
    mark painted on the layer on the same pixel as the mark in the grown picture."""
    plan = plan_inpaint(CANVAS, Rect(80, 10, 40, 40))  # past the canvas's right edge
    r = plan.region
    rgba = np.zeros((r.h, r.w, 4), np.uint8)
    rgba[:, : CANVAS.right - r.x] = (10, 20, 30, 255)  # painted up to the canvas edge
    mark = (slice(20 - r.y, 24 - r.y), slice(90 - r.x, 94 - r.x))  # document (90..94, 20..24)
    rgba[mark] = 255
    layer = np.zeros((r.h, r.w, 4), np.uint8)  # a depth layer, read over the same region
    layer[mark] = 255
    mask = np.zeros((r.h, r.w), np.uint8)
    mask[10 - r.y : 50 - r.y, 80 - r.x :] = 255
    unit = controls.control_unit(controls.ControlMark("depth"), layer)
    job = inpaint_job(P, plan, inpaint_inputs(rgba, mask), [unit])
    o = job.outpaint
    assert o.right > 0
    grown = (job.height + o.top + o.bottom, job.width + o.left + o.right)
    sent = Job.from_wire(*job.to_wire()).controls[0].image
    assert sent.shape == (*grown, 3) == (r.h, r.w, 3)
    assert sent.shape[:2] != job.init_image.shape[:2]
    picture = np.pad(job.init_image, ((o.top, o.bottom), (o.left, o.right), (0, 0)))
    assert (picture == 255).all(axis=2).sum() == 16
    assert np.array_equal((picture == 255).all(axis=2), (sent == 255).all(axis=2))


def test_inpaint_without_any_selected_pixel_is_refused():
    plan = plan_inpaint(CANVAS, Rect(0, 0, 20, 20))
    rgba = np.full((plan.region.h, plan.region.w, 4), 255, np.uint8)
    inputs = inpaint_inputs(rgba, np.zeros((plan.region.h, plan.region.w), np.uint8))
    with pytest.raises(PlanError, match="empty"):
        inpaint_job(P, plan, inputs)


def test_crop_result_cuts_the_target_and_adds_alpha():
    plan = plan_generate(CANVAS, Rect(3, 4, 50, 60))
    img = np.arange(64 * 64 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 64, 3)
    out = crop_result(img, plan)
    assert out.shape == (60, 50, 4) and (out[..., 3] == 255).all()
    assert np.array_equal(out[..., :3], img[:60, :50])
    with pytest.raises(ValueError):
        crop_result(img[:10], plan)


def test_control_marks_round_trip_and_survive_damage():
    marks = {
        "{a}": controls.ControlMark("openpose", 0.8, 0.1, 0.9),
        "{b}": controls.ControlMark("depth"),
    }
    assert controls.load_marks(controls.dump_marks(marks)) == marks
    assert controls.load_marks(b"not json") == {}
    damaged = b'{"{a}": {"type": "bogus"}, "{b}": {"type": "depth", "weight": 1.0}}'
    assert list(controls.load_marks(damaged)) == ["{b}"]
    with pytest.raises(ValueError):
        controls.ControlMark("depth", start=0.8, end=0.2)


def test_line_controls_are_white_strokes_on_black():
    layer = np.zeros((16, 16, 4), np.uint8)
    layer[8, :, 3] = 255  # one black stroke on a transparent layer
    img = controls.control_image(layer, "scribble")
    assert img.shape == (16, 16, 3) and (img[8] == 255).all() and (img[0] == 0).all()
    paper = np.full((16, 16, 4), 255, np.uint8)
    paper[4, :, :3] = 0  # dark line on white paper
    img = controls.control_image(paper, "lineart")
    assert (img[4] == 255).all() and (img[0] == 0).all()


def test_pose_and_depth_controls_are_used_as_painted_over_black():
    layer = np.zeros((8, 8, 4), np.uint8)
    layer[2, 2] = (255, 0, 85, 255)
    unit = controls.control_unit(controls.ControlMark("openpose", 0.7), layer)
    assert unit.type == "openpose" and unit.weight == 0.7
    assert unit.image[2, 2].tolist() == [255, 0, 85] and unit.image[0, 0].tolist() == [0, 0, 0]


def test_layer_names_carry_prompt_and_seed():
    name = naming.layer_name("(masterpiece:1.2), a fox <lora:x:1> in snow", 1234)
    assert "1234" in name and "masterpiece" in name and "lora" not in name and "1.2" not in name
    # The prompt leads (a narrow Layers docker cuts the end off), the seed follows.
    assert name.startswith("masterpiece , a fox in snow · DW") and name.endswith(" 1234")
    assert naming.seed_from_layer_name(name) == 1234
    assert naming.seed_from_layer_name(naming.layer_name("x", 7, "inpaint")) == 7
    assert len(naming.short_prompt("word " * 50)) <= naming.MAX_PROMPT_CHARS + 1
    assert naming.group_name("fox", 3) == "fox · DW generate ×3"


def test_parameters_copy_back_from_infotext():
    text = format_infotext(
        prompt="a fox",
        negative_prompt="ugly",
        steps=12,
        sampler="DPM++ 2M",
        schedule_type="Karras",
        cfg_scale=6.5,
        seed=99,
        model="tiny-sd1",
        denoising_strength=0.4,
    )
    base = Params(batch=3)
    p = params_from_infotext(text, base)
    assert (p.prompt, p.negative, p.steps, p.cfg, p.seed, p.model, p.strength) == (
        "a fox",
        "ugly",
        12,
        6.5,
        99,
        "tiny-sd1",
        0.4,
    )
    assert p.sampler == "DPM++ 2M Karras"
    assert p.batch == 3  # not in the infotext: kept from the panel


def test_history_is_newest_first_and_bounded():
    h = History()
    from dreamwire_krita.logic.history import MAX_ENTRIES, Entry

    for i in range(MAX_ENTRIES + 5):
        h.add(Entry(np.zeros((1, 1, 4), np.uint8), i, "", P, plan_generate(CANVAS, None)))
    assert len(h) == MAX_ENTRIES and h[0].seed == MAX_ENTRIES + 4


def test_settings_persist_through_reader_and_writer():
    store: dict = {}
    s = Settings(address="tcp://10.0.0.2:5790", server_key="k" * 40, client_key="s" * 40)
    save(s, lambda g, n, v: store.__setitem__((g, n), v))
    back = load(lambda g, n, d: store.get((g, n), d))
    assert back == s and not back.problems() and not back.is_local()
    assert Settings(address="http://x").problems()
    assert Settings(server_key="k" * 40).problems()
    assert Settings(server_key="short", client_key="s" * 40).problems()


def test_settings_accept_key_files(tmp_path):
    (tmp_path / "server.key").write_text("public-key = x")
    (tmp_path / "me.key_secret").write_text("secret-key = y")
    s = Settings(
        server_key=str(tmp_path / "server.key"), client_key=str(tmp_path / "me.key_secret")
    )
    assert not s.problems()
    assert Settings().is_local()


def test_params_from_dict_tolerates_junk():
    p = Params.from_dict({"steps": "12", "cfg": "x", "unknown": 1})
    assert p.steps == 12 and p.cfg == Params().cfg


def _inpaint_inputs_for(plan):
    h, w = plan.region.h, plan.region.w
    rgba = np.full((h, w, 4), 200, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[8:24, 8:24] = 255
    return inpaint_inputs(rgba, mask)


def test_masked_content_defaults_to_a1111s_original_like_the_job():
    assert Params().inpaint_fill == Job().inpaint_fill == "original"
    plan = plan_inpaint(CANVAS, Rect(20, 10, 30, 30))
    assert inpaint_job(P, plan, _inpaint_inputs_for(plan)).inpaint_fill == "original"


def test_masked_content_goes_into_inpaint_and_outpaint_jobs_only():
    plan = plan_inpaint(CANVAS, Rect(20, 10, 30, 30))
    for mode in ("fill", "original", "latent noise", "latent nothing"):
        p = Params(**{**P.to_dict(), "inpaint_fill": mode})
        job = inpaint_job(p, plan, _inpaint_inputs_for(plan))
        assert Job.from_wire(*job.to_wire()).validate().inpaint_fill == mode
    # A selection past the painted content: the outpainted margin is inpainted with it too.
    plan = plan_inpaint(CANVAS, Rect(80, 10, 40, 40))
    h, w = plan.region.h, plan.region.w
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:, : w - 24] = (10, 20, 30, 255)
    mask = np.zeros((h, w), np.uint8)
    mask[10:40, w - 36 :] = 255
    p = Params(**{**P.to_dict(), "inpaint_fill": "latent nothing"})
    job = inpaint_job(p, plan, inpaint_inputs(rgba, mask))
    assert job.outpaint.right > 0 and job.inpaint_fill == "latent nothing"
    # Generate and refine have no mask for it to act on: their jobs keep the default.
    p = Params(**{**P.to_dict(), "inpaint_fill": "fill"})
    assert generate_job(p, plan_generate(CANVAS, None)).inpaint_fill == "original"
    plan = plan_refine(CANVAS, None)
    region = np.zeros((plan.region.h, plan.region.w, 4), np.uint8)
    assert refine_job(p, plan, region).inpaint_fill == "original"


def test_masked_content_persists_with_the_panel_and_drops_unknown_names():
    import json

    p = Params(**{**P.to_dict(), "inpaint_fill": "latent noise"})
    assert Params.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Params.from_dict({"inpaint_fill": "latent something"}).inpaint_fill == "original"


def test_masked_content_copies_back_from_a1111_infotext():
    text = (
        "a fox\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, "
        "CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.75, Mask blur: 4, "
        "Masked content: latent noise, Version: v1.10.1"
    )
    assert params_from_infotext(text, Params()).inpaint_fill == "latent noise"
    # A1111 leaves "original" out; pasting text without it keeps the panel's choice.
    base = Params(inpaint_fill="fill")
    assert (
        params_from_infotext(text.replace("Masked content: latent noise, ", ""), base).inpaint_fill
        == "fill"
    )
