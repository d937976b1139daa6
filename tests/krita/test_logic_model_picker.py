"""The model picker's grouped rows and search, and the LoRA picker's prompt tags."""

from __future__ import annotations

import pytest
from dreamwire_krita.logic import lora_tags, model_picker
from dreamwire_krita.logic.library import library

from dreamwire.shared.events import Welcome
from dreamwire.shared.families import FamilyInfo, ModelFamily, NativeResolution

WELCOME = Welcome.from_body(
    {
        "models": ["zeta-xl", "Alpha_XL_turbo", "dreamshaper_8", "flux1-dev", "mystery"],
        "loras": ["detail", {"name": "film grain"}],
        "model_families": {
            "zeta-xl": "sdxl",
            "Alpha_XL_turbo": "sdxl",
            "dreamshaper_8": "sd1",
            "flux1-dev": "flux",
            "mystery": "newfam",
        },
        "model_missing": {"flux1-dev": "no T5: add t5xxl_fp16.safetensors"},
        "families": {
            "newfam": FamilyInfo(
                ModelFamily("newfam", "New Family", NativeResolution(1, 1, 1))
            ).to_wire(),
        },
    }
)


def test_rows_group_models_by_family_with_what_is_missing():
    lib = library(WELCOME)
    rows = model_picker.rows(lib, "dreamshaper_8", WELCOME)
    assert [(r.text, r.header) for r in rows] == [
        ("SD1.x (1)", True),
        ("dreamshaper_8", False),
        ("SDXL (2)", True),
        ("Alpha_XL_turbo", False),  # by name, case aside
        ("zeta-xl", False),
        ("Flux.1 (1)", True),
        ("flux1-dev", False),
        ("New Family (1)", True),  # a family this plugin does not know, by the backend's label
        ("mystery", False),
    ]
    flux = next(r for r in rows if r.text == "flux1-dev")
    assert not flux.usable and flux.tip == "Missing: no T5: add t5xxl_fp16.safetensors"
    assert next(r for r in rows if r.text == "zeta-xl").usable


def test_a_name_the_backend_does_not_list_is_shown_first_as_such():
    rows = model_picker.rows(library(WELCOME), "deleted_model", WELCOME)
    assert rows[0].text == "deleted_model" and not rows[0].listed and not rows[0].usable
    assert "not on the backend" in rows[0].tip
    # Before the first welcome only the panel's model is there, unlisted.
    assert [r.text for r in model_picker.rows(library(None), "m")] == ["m"]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("xl", ["Alpha_XL_turbo", "zeta-xl"]),
        ("XL TURBO", ["Alpha_XL_turbo"]),
        ("flux", ["flux1-dev"]),
        ("SDXL", ["Alpha_XL_turbo", "zeta-xl"]),  # the family's label matches too
        # Names starting with it first, then the list's order.
        ("a", ["Alpha_XL_turbo", "dreamshaper_8", "zeta-xl", "mystery"]),
        ("nothing like it", []),
    ],
)
def test_search_matches_every_word_in_name_or_family(text, want):
    rows = model_picker.rows(library(WELCOME), "unlisted-z", WELCOME)
    assert model_picker.search(rows, text, WELCOME) == want  # never the unlisted name


def test_library_reads_names_and_lora_dicts():
    lib = library(WELCOME)
    assert lib.loras == ("detail", "film grain") and lib.known
    assert lib.families["mystery"] == "newfam"


def test_lora_picker_inserts_a_tag_or_changes_its_weight():
    assert lora_tags.insert_lora("", "detail", 1) == "<lora:detail:1>"
    p = lora_tags.insert_lora("a cat, ", "detail", 0.75)
    assert p == "a cat, <lora:detail:0.75>"
    p = lora_tags.insert_lora(p + " <lora:grain:1>", "DETAIL", 0.3000001)
    assert p == "a cat, <lora:detail:0.3> <lora:grain:1>"
    assert lora_tags.prompt_loras(p) == [("detail", 0.3), ("grain", 1.0)]
    with pytest.raises(ValueError):
        lora_tags.insert_lora("a", "bad:name", 1)


def test_lora_list_text_parses_and_says_what_is_wrong():
    assert lora_tags.parse_list("detail:0.6, film grain , x:-1") == [
        ("detail", 0.6),
        ("film grain", 1.0),
        ("x", -1.0),
    ]
    assert lora_tags.list_text([("detail", 0.6), ("g", 1.0)]) == "detail:0.6, g:1"
    with pytest.raises(ValueError, match="'detail:lots': write name:weight"):
        lora_tags.parse_list("ok, detail:lots")
