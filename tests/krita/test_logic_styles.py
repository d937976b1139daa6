"""Styles: the prompt merge, JSON checks, the checkpoint a style resolves to, the store."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from dreamwire_krita.logic import styles
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.history import params_from_infotext
from dreamwire_krita.logic.jobs import generate_job
from dreamwire_krita.logic.library import Library
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import plan_generate
from dreamwire_krita.logic.style_store import StyleStore
from dreamwire_krita.logic.styles import Style, StyleError, StyleLora

from dreamwire.shared import families as fams
from dreamwire.shared.infotext import Infotext, format_infotext

LIB = Library(
    models=("dreamshaper_8", "juggernautXL_v9", "zz-xl", "flux1-dev", "flux1-schnell"),
    families={
        "dreamshaper_8": "sd1",
        "juggernautXL_v9": "sdxl",
        "zz-xl": "sdxl",
        "flux1-dev": "flux",
        "flux1-schnell": "flux",
    },
    missing={"flux1-dev": "no T5 (t5xxl_fp16.safetensors in models/text_encoders)"},
    loras=("detail", "Film Grain"),
    known=True,
)


@pytest.mark.parametrize(
    ("prompt", "template", "want"),
    [
        ("a cat", "{prompt}, best quality", "a cat, best quality"),
        ("a cat", "oil painting of {prompt}, impasto", "oil painting of a cat, impasto"),
        ("a cat", "best quality", "a cat, best quality"),  # no {prompt}: appended
        ("", "best quality", "best quality"),
        ("a cat", "", "a cat"),
    ],
)
def test_prompt_template_merges_as_krita_ai_diffusion_does(prompt, template, want):
    assert styles.merge_prompt(prompt, template) == want
    # ... and a result's infotext copied back gives the artist's own prompt again.
    assert styles.unmerge_prompt(want, template) == prompt


def test_unmerge_leaves_text_the_template_did_not_make():
    assert styles.unmerge_prompt("a dog", "{prompt}, best quality") == "a dog"
    assert styles.unmerge_prompt("a {prompt}", "{prompt} and {prompt}") == "a {prompt}"


def test_style_reaches_the_job_and_the_panel_prompt_stays_the_artists():
    style = Style(
        "Oil",
        prompt="oil painting of {prompt}",
        negative="blurry",
        loras=(StyleLora("detail", 0.6),),
    )
    p = Params(
        prompt="a cat",
        negative="dogs",
        model="m",
        style=style.name,
        style_prompt=style.job_template(),
        style_negative=style.negative,
    )
    plan = plan_generate(Rect(0, 0, 64, 64), None)
    job = generate_job(p, plan)
    assert job.prompt == "oil painting of a cat <lora:detail:0.6>"
    assert job.negative == "dogs, blurry"
    assert p.prompt == "a cat"  # the layer name and history lead with the artist's prompt
    # The infotext of that job copied back while the style is active: no double template.
    text = format_infotext(Infotext(job.prompt, job.negative, steps=2, sampler="Euler", seed=5))
    back = params_from_infotext(text, p)
    assert (back.prompt, back.negative, back.seed) == ("a cat", "dogs", 5)


def test_no_style_sends_the_prompts_unchanged():
    p = Params(prompt="a cat", negative="dogs")
    assert (p.for_job().prompt, p.for_job().negative) == ("a cat", "dogs")


def test_style_json_round_trips():
    style = Style(
        "Mine",
        checkpoints=("juggernautXL_v9",),
        loras=(StyleLora("detail", 0.6), StyleLora("Film Grain", -0.5)),
        prompt="{prompt}, film",
        negative="blurry",
        sampler="DPM++ 2M SDE",
        schedule="Exponential",
        steps=30,
        cfg=5.5,
        distilled_cfg=3.0,
    )
    back = styles.from_json(style.to_json(), "mine.json")
    assert back == style
    assert back.sampler_name == "DPM++ 2M SDE Exponential"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("{not json", "broken.json: not a JSON file"),
        ("[1, 2]", "a style is a JSON object"),
        ({"steps": 20}, "'name' is missing"),
        ({"name": "x", "steps": "many"}, "'steps' must be a whole number from 1 to 150"),
        ({"name": "x", "steps": 2.5}, "'steps' must be a whole number"),
        ({"name": "x", "cfg": 99}, "'cfg' must be a number from 0 to 30, not 99"),
        ({"name": "x", "cfg": True}, "'cfg' must be a number"),
        ({"name": "x", "prompt": 3}, "'prompt' must be text, not 3"),
        ({"name": "x", "schedule": "Sideways"}, "'schedule' must be one of Automatic"),
        ({"name": "x", "loras": "detail"}, "'loras' must be a list"),
        ({"name": "x", "loras": [{"name": "a:b"}]}, "loras[0]: 'name' must be a LoRA's name"),
        ({"name": "x", "loras": [{"name": "a", "weight": "x"}]}, "loras[0]: 'weight' must be"),
        ({"name": "x", "checkpoints": [1]}, "'checkpoints' must be a list of checkpoint names"),
        ({"name": "x", "family": "sd9"}, "'family' must be one of sd1"),
        ({"name": "x", "version": 99}, "made by a newer Dreamwire"),
    ],
)
def test_a_bad_style_file_says_which_file_and_what(data, says):
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(StyleError) as err:
        styles.from_json(text, "broken.json")
    assert str(err.value).startswith("broken.json") and says in str(err.value), str(err.value)


def test_a_combined_sampler_name_keeps_its_schedule():
    s = styles.from_json(json.dumps({"name": "x", "sampler": "DPM++ 2M Karras"}))
    assert (s.sampler, s.schedule, s.sampler_name) == ("DPM++ 2M", "Karras", "DPM++ 2M Karras")
    s = styles.from_json(json.dumps({"name": "x", "checkpoints": "one.safetensors"}))
    assert s.checkpoints == ("one.safetensors",)


def test_checkpoint_resolution_prefers_the_style_s_then_its_family_s():
    mine = Style("Mine", checkpoints=("gone", "JUGGERNAUTxl_v9"))
    assert styles.resolve(mine, LIB) == styles.Resolved("juggernautXL_v9")
    missing = Style("Old", checkpoints=("deleted_model",))
    r = styles.resolve(missing, LIB)
    assert r.missing and "'deleted_model' is not on the backend" in r.note
    assert styles.label(missing, LIB) == "Old (checkpoint missing)"
    assert "Missing: checkpoint 'deleted_model'" in styles.describe(missing, LIB)
    # Shipped SDXL: none of its names listed here but juggernaut, which is first.
    sdxl = next(s for s in styles.SHIPPED if s.family == "sdxl")
    assert styles.resolve(sdxl, LIB).model == "juggernautXL_v9"
    # Shipped Flux: flux1-dev is listed but lacks its T5: shown as incomplete, with why.
    flux = next(s for s in styles.SHIPPED if s.family == "flux")
    r = styles.resolve(flux, LIB)
    assert r.model == "flux1-dev" and "no T5" in r.note
    assert styles.label(flux, LIB) == "Flux (incomplete)"
    # A family with no model at all.
    qwen = next(s for s in styles.SHIPPED if s.family == "qwen-image")
    assert styles.resolve(qwen, LIB).note == "no Qwen-Image model on the backend"
    # Before the backend has answered nothing is called missing.
    assert (
        styles.label(missing, Library()) == "Old" and styles.label(qwen, Library()) == "Qwen-Image"
    )


def test_family_fallback_picks_a_complete_model_first():
    style = Style("F", family="flux")
    assert styles.resolve(style, LIB).model == "flux1-schnell"


def test_missing_loras_are_named():
    style = Style("L", checkpoints=("zz-xl",), loras=(StyleLora("film grain"), StyleLora("x")))
    assert styles.missing_loras(style, LIB) == ["x"]
    assert styles.label(style, LIB) == "L (incomplete)"


def test_shipped_styles_cover_sd15_sdxl_flux_and_every_family():
    names = [s.name for s in styles.SHIPPED]
    assert names[:3] == ["SD1.5", "SDXL", "Flux"]
    assert {s.family for s in styles.SHIPPED} == set(fams.FAMILIES)
    for s in styles.SHIPPED:
        fam = fams.FAMILIES[s.family]
        assert s.builtin and s.sampler_name == fam.defaults.sampler
        assert (s.steps, s.cfg) == (fam.defaults.steps, fam.defaults.cfg)
        assert styles.from_json(s.to_json()) == replace(s, builtin=False)


def test_save_current_as_style_checks_the_dialog_fields():
    s = styles.from_panel(
        "Mine", "zz-xl", "Euler a", 12, 4.0, None, "{prompt}, ink", "blur", "detail:0.6, grain"
    )
    assert s.checkpoints == ("zz-xl",) and s.sampler_name == "Euler a"
    assert s.loras == (StyleLora("detail", 0.6), StyleLora("grain", 1.0))
    with pytest.raises(StyleError, match="write name:weight"):
        styles.from_panel("Mine", "m", "Euler", 12, 4.0, None, "", "", "detail:lots")
    with pytest.raises(StyleError, match="'name' is missing"):
        styles.from_panel("  ", "m", "Euler", 12, 4.0, None, "", "", "")


def test_store_loads_saves_deletes_and_skips_broken_files(tmp_path):
    folder = tmp_path / "dreamwire" / "styles"
    store = StyleStore(folder)
    loaded = store.load()  # no folder yet: the shipped styles
    assert [s.name for s in loaded.styles] == [s.name for s in styles.SHIPPED]
    mine = Style("Ink & Wash", checkpoints=("zz-xl",), prompt="ink wash of {prompt}")
    path = store.save(mine)
    assert path.parent == folder and path.name == "ink-wash.json"
    (folder / "broken.json").write_text('{"name": "B", "steps": -1}')
    (folder / "notes.json").write_text("not json")
    loaded = StyleStore(folder).load()
    assert loaded.styles[-1] == mine
    assert len(loaded.problems) == 2 and loaded.problems[0].startswith("broken.json: 'steps'")
    assert loaded.problems[1].startswith("notes.json: not a JSON file")
    # Saving again under the same name replaces that file; a shipped name shadows it.
    store.save(replace(mine, steps=9))
    store.save(Style("SDXL", checkpoints=("zz-xl",)))
    again = StyleStore(folder)
    loaded = again.load()
    by_name = {s.name: s for s in loaded.styles}
    assert by_name["Ink & Wash"].steps == 9 and by_name["SDXL"].checkpoints == ("zz-xl",)
    assert [s.name for s in loaded.styles].count("SDXL") == 1
    again.delete("SDXL")  # the artist's file goes; the shipped one is back
    assert next(s for s in again.load().styles if s.name == "SDXL").builtin
    with pytest.raises(StyleError, match="shipped style"):
        again.delete("Flux")
