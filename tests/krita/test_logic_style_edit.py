"""The style editor's rules (logic/style_edit.py) and the LoRA list filtered by the
model's family (logic/library.py lora_choices): pure, over a real folder for the store."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from dreamwire_krita.logic import style_edit as se
from dreamwire_krita.logic import styles
from dreamwire_krita.logic.library import Library, library, lora_choices
from dreamwire_krita.logic.style_store import StyleStore
from dreamwire_krita.logic.styles import Style, StyleError, StyleLora

from dreamwire.shared.events import Welcome

SHIPPED = [s.name for s in styles.SHIPPED]


def test_new_and_copy_names_are_free_whatever_the_case():
    assert se.new_name(SHIPPED) == "New style"
    assert se.new_name([*SHIPPED, "new style", "New style 2"]) == "New style 3"
    assert se.copy_name("Ink", ["Ink"]) == "Ink copy"
    assert se.copy_name("Ink", ["Ink", "ink COPY"]) == "Ink copy 2"
    # A copy of a copy counts on from the same stem.
    assert se.copy_name("Ink copy 2", ["Ink", "Ink copy", "Ink copy 2"]) == "Ink copy 3"


def test_a_duplicate_of_a_shipped_style_is_the_artists_and_keeps_its_fallback():
    sdxl = next(s for s in styles.SHIPPED if s.name == "SDXL")
    copy = se.duplicate(sdxl, SHIPPED)
    assert copy.name == "SDXL copy" and not copy.builtin and copy.family == "sdxl"
    assert replace(copy, name=sdxl.name, builtin=True) == sdxl  # nothing else changed


def test_new_style_takes_the_panels_model_and_the_picked_styles_sampling():
    like = Style("Ink", sampler="Euler a", schedule="Automatic", steps=9, cfg=3.5)
    s = se.new_style("zz-xl", SHIPPED, like)
    assert (s.name, s.checkpoints, s.sampler_name, s.steps, s.cfg) == (
        "New style",
        ("zz-xl",),
        "Euler a",
        9,
        3.5,
    )
    assert se.new_style("", SHIPPED).checkpoints == ()


def _draft(**kw) -> se.Draft:
    base = se.draft_of(Style("Ink", checkpoints=("zz-xl",), loras=(StyleLora("detail", 0.6),)))
    return replace(base, **kw)


def test_build_checks_the_fields_as_a_file_is():
    ink = Style("Ink", checkpoints=("zz-xl",))
    got = se.build(_draft(checkpoints=("zz-xl", " ZZ-XL ", "", "b/m")), ink, ["Ink", *SHIPPED])
    assert got.checkpoints == ("zz-xl", "b/m") and got.loras == (StyleLora("detail", 0.6),)
    cases = [
        (_draft(name="  "), "Give the style a name"),
        (_draft(name="sdxl"), "'sdxl' exists already"),  # a shipped style's name
        (_draft(checkpoints=()), "add the checkpoint"),
        (_draft(loras=(("detail", 1.0), ("Detail ", 0.5))), "'Detail' is in the list twice"),
        (_draft(steps=0), "'steps' must be a whole number from 1 to 150"),
        (_draft(cfg=31.0), "'cfg' must be a number from 0 to 30"),
        (_draft(schedule="Sometimes"), "'schedule' must be one of"),
        (_draft(loras=(("a:b", 1.0),)), "no <, > or :"),
    ]
    for draft, message in cases:
        with pytest.raises(StyleError, match=message):
            se.build(draft, ink, ["Ink", *SHIPPED])
    # A shipped style keeps its name (its copy takes its place) and its family fallback.
    flux = next(s for s in styles.SHIPPED if s.name == "Flux")
    edited = se.build(replace(se.draft_of(flux), checkpoints=(), steps=8), flux, SHIPPED)
    assert edited.family == "flux" and edited.steps == 8 and not edited.builtin
    assert edited.distilled_cfg == flux.distilled_cfg


def test_saving_a_shipped_style_writes_a_copy_and_deleting_it_brings_it_back(tmp_path):
    store = StyleStore(tmp_path / "styles")
    store.load()
    sd15 = next(s for s in styles.SHIPPED if s.name == "SD1.5")
    edited = se.build(replace(se.draft_of(sd15), steps=33), sd15, SHIPPED)
    path = se.save(store, edited, sd15)
    assert json.loads(path.read_text())["steps"] == 33
    loaded = {s.name: s for s in store.load().styles}
    assert loaded["SD1.5"].steps == 33 and not loaded["SD1.5"].builtin
    assert se.deletable(store, "SD1.5") and not se.deletable(store, "SDXL")
    assert se.delete(store, "SD1.5", SHIPPED).endswith("the shipped style is back.")
    assert {s.name: s for s in store.load().styles}["SD1.5"] == sd15
    with pytest.raises(StyleError, match="shipped style"):
        se.delete(store, "SDXL", SHIPPED)


def test_renaming_the_artists_style_moves_its_file(tmp_path):
    store = StyleStore(tmp_path / "styles")
    store.load()
    ink = Style("Ink", checkpoints=("zz-xl",))
    old = se.save(store, ink, None)
    taken = [s.name for s in store.load().styles]
    renamed = se.build(_draft(name="Wash"), ink, taken)
    new = se.save(store, renamed, ink)
    assert not old.exists() and new.exists()
    assert [s.name for s in store.load().styles if not s.builtin] == ["Wash"]


LIB = Library(
    loras=("xl-detail", "Anime", "sd-grain", "mystery", "both"),
    lora_families={
        "xl-detail": ("sdxl",),
        "Anime": ("sdxl",),
        "sd-grain": ("sd1",),
        "both": ("sd1", "sd2"),
    },
    known=True,
)


def test_loras_of_the_models_family_first_unknown_ones_everywhere():
    xl = lora_choices(LIB, "sdxl")
    assert xl.names == ("Anime", "mystery", "xl-detail") and xl.hidden == 2
    everything = lora_choices(LIB, "sdxl", show_all=True)
    assert everything.names == ("Anime", "mystery", "xl-detail", "both", "sd-grain")
    assert everything.fitting == 3 and everything.hidden == 0
    assert lora_choices(LIB, "sd2").names == ("both", "mystery")
    # A model of unknown family, or a backend that tells no LoRA's family: all of them.
    assert lora_choices(LIB, "").hidden == 0
    old = library(Welcome.from_body({"protocol": 1, "loras": ["b", "a"]}))
    assert lora_choices(old, "flux").names == ("a", "b")
    new = library(
        Welcome.from_body({"protocol": 1, "loras": ["b"], "lora_families": {"b": ["sd1"]}})
    )
    assert lora_choices(new, "flux").names == () and new.lora_families == {"b": ("sd1",)}
