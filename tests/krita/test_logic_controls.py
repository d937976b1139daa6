"""Control layer types in the docker: wire names, Reference pictures, what the backend serves."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic import controls
from dreamwire_krita.logic.regions import PlanError

from dreamwire.shared.events import Welcome
from dreamwire.shared.job import CONTROL_TYPES, Job
from dreamwire.shared.native_size import model_family


def test_every_docker_type_is_a_backend_wire_type():
    assert set(controls.TYPES.values()) <= set(CONTROL_TYPES)
    assert len(set(controls.TYPES.values())) == len(controls.TYPES)  # one label per type
    t = controls.TYPES
    assert (t["Reference"], t["Tile / blur"], t["Colour"]) == ("ip-adapter", "tile", "color")
    assert (t["Line art (anime)"], t["MLSD"]) == ("lineart_anime", "mlsd")


def test_reference_is_the_layers_picture_in_colour_cropped_to_its_content():
    layer = np.zeros((40, 60, 4), np.uint8)
    layer[10:20, 5:35] = (200, 30, 40, 255)  # an opaque red picture
    layer[20:30, 5:35] = (0, 0, 255, 128)  # half-transparent blue under it
    img = controls.control_image(layer, "ip-adapter")
    assert img.shape == (20, 30, 3)  # the content's bounds, not the canvas area
    assert tuple(img[0, 0]) == (200, 30, 40)  # colour kept, not turned into lines
    assert tuple(img[-1, 0]) == (127, 127, 255)  # transparency over white, not black
    with pytest.raises(PlanError, match="Reference layer is empty"):
        controls.control_image(np.zeros((8, 8, 4), np.uint8), "ip-adapter")


def test_reference_unit_uses_krita_ai_diffusions_defaults_and_validates_in_a_job():
    d = controls.defaults("ip-adapter")
    assert (d.weight, d.start, d.end) == (0.8, 0.2, 0.8)
    assert controls.defaults("depth") == controls.Defaults(1.0, 0.0, 1.0)
    layer = np.full((16, 24, 4), 255, np.uint8)
    mark = controls.ControlMark("ip-adapter", d.weight, d.start, d.end)
    unit = controls.control_unit(mark, layer)
    assert (unit.type, unit.weight, unit.start, unit.end) == ("ip-adapter", 0.8, 0.2, 0.8)
    assert unit.preprocessor == "none"
    Job(prompt="x", width=64, height=64, controls=[unit]).validate()


def test_new_map_types_are_prepared_for_their_models():
    sketch = np.zeros((8, 8, 4), np.uint8)
    sketch[2, :] = (0, 0, 0, 255)
    anime = controls.control_image(sketch, "lineart_anime")
    assert anime[2].min() == 255 and anime[3].max() == 0  # white strokes on black
    colours = np.zeros((8, 8, 4), np.uint8)
    colours[..., 0], colours[..., 3] = 180, 255
    unit = controls.control_unit(controls.ControlMark("color"), colours)
    assert unit.preprocessor == "t2ia_color_grid"  # A1111's input for the T2I colour adapter
    assert tuple(unit.image[0, 0]) == (180, 0, 0)
    tile = controls.control_unit(controls.ControlMark("tile"), colours)
    assert tile.preprocessor == "none" and tuple(tile.image[0, 0]) == (180, 0, 0)


def _welcome(**extra) -> Welcome:
    return Welcome.from_body({"protocol": 1, **extra})


WELCOME = _welcome(
    model_families={"tiny-sd1": "sd1", "tiny-sdxl": "sdxl"},
    control_types={
        "sd1": {t: "x" for t in CONTROL_TYPES},
        "sdxl": {"depth": "d", "ip-adapter": "ip-adapter_sdxl + enc"},
    },
    control_missing={"sdxl": {"color": "no color ControlNet for SDXL (e.g. t2i_color)"}},
)


def test_types_the_backend_cannot_serve_for_the_model_are_marked_with_the_reason():
    sd1 = controls.offers(WELCOME, model_family("tiny-sd1", WELCOME))
    assert [o.label for o in sd1] == list(controls.TYPES) and all(o.available for o in sd1)
    xl = {o.label: o for o in controls.offers(WELCOME, model_family("tiny-sdxl", WELCOME))}
    assert xl["Depth"].available and xl["Reference"].available
    assert not xl["Colour"].available and not xl["Canny"].available
    assert xl["Colour"].why == (
        "Not available for SDXL models: no color ControlNet for SDXL (e.g. t2i_color)"
    )
    assert "no canny model" in xl["Canny"].why  # no reason given: still says what is missing
    assert not xl["Face"].available and "mediapipe_face" in xl["Face"].why


def test_a_face_layer_goes_as_painted_a_mediapipe_face_map():
    """A Face layer holds the face map (made from a photo, or drawn): its colours as they
    are, over black, with no preprocessor."""
    assert controls.TYPES["Face"] == "mediapipe_face"
    face = np.zeros((8, 8, 4), np.uint8)
    face[3, 1:7] = (10, 200, 10, 255)  # a line of the face oval, on a transparent layer
    unit = controls.control_unit(controls.ControlMark("mediapipe_face", weight=0.8), face)
    assert (unit.type, unit.preprocessor, unit.weight) == ("mediapipe_face", "none", 0.8)
    assert tuple(unit.image[3, 2]) == (10, 200, 10) and tuple(unit.image[0, 0]) == (0, 0, 0)


def test_a_backend_that_does_not_list_control_types_leaves_every_type_offered():
    for welcome, family in ((None, "sd1"), (_welcome(), "sdxl"), (WELCOME, "sd2")):
        assert all(o.available for o in controls.offers(welcome, family))


def test_style_and_composition_layers_are_references_with_krita_ai_diffusions_presets():
    labels = list(controls.TYPES)
    assert labels[:3] == ["Reference", "Style", "Composition"]  # Krita AI Diffusion's order
    assert controls.TYPES["Style"] == "ip-adapter-style"
    assert controls.TYPES["Composition"] == "ip-adapter-composition"
    # presets/control.json, the middle of the three: style 0.8 over 0.2-1.0,
    # composition 0.8 over 0.0-0.8.
    presets = {"ip-adapter-style": (0.8, 0.2, 1.0), "ip-adapter-composition": (0.8, 0.0, 0.8)}
    layer = np.zeros((40, 60, 4), np.uint8)
    layer[10:20, 5:35] = (20, 200, 40, 255)
    for wire, expected in presets.items():
        d = controls.defaults(wire)
        assert (d.weight, d.start, d.end) == expected
        unit = controls.control_unit(controls.ControlMark(wire, d.weight, d.start, d.end), layer)
        assert (unit.type, unit.weight, unit.start, unit.end) == (wire, *expected)
        assert unit.image.shape == (10, 30, 3) and tuple(unit.image[0, 0]) == (20, 200, 40)
        Job(prompt="x", width=64, height=64, controls=[unit]).validate()
    with pytest.raises(PlanError, match="A Composition layer is empty"):
        controls.control_image(np.zeros((8, 8, 4), np.uint8), "ip-adapter-composition")
    marks = {"a": controls.ControlMark("ip-adapter-style", 1.2, 0.0, 1.0)}
    assert controls.load_marks(controls.dump_marks(marks)) == marks


def test_style_and_composition_follow_the_welcome():
    welcome = _welcome(
        model_families={"m": "sdxl"},
        control_types={"sdxl": {"ip-adapter-style": "ip-adapter_sdxl + enc"}},
        control_missing={"sdxl": {"ip-adapter-composition": "no IP-Adapter for SDXL"}},
    )
    xl = {o.label: o for o in controls.offers(welcome, "sdxl")}
    assert xl["Style"].available and not xl["Composition"].available
    assert xl["Composition"].why == "Not available for SDXL models: no IP-Adapter for SDXL"


def test_a_switched_off_mark_is_kept_stored_and_left_out_of_jobs():
    on = controls.ControlMark("depth", 0.6, 0.1, 0.9)
    off = controls.switched(on, False)
    assert not off.enabled and (off.type, off.weight, off.start, off.end) == (
        "depth",
        0.6,
        0.1,
        0.9,
    )
    marks = {"a": off, "b": controls.ControlMark("canny")}
    assert list(controls.in_use(marks)) == ["b"]
    # The switch is stored with the mark, so it survives saving the document.
    loaded = controls.load_marks(controls.dump_marks(marks))
    assert loaded == marks and not loaded["a"].enabled
    assert controls.in_use({"a": controls.switched(off, True)}) == {"a": on}
    # Marks saved before the switch existed load as on; a damaged switch drops the mark.
    old = b'{"a": {"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0}}'
    assert controls.load_marks(old)["a"].enabled
    bad = b'{"a": {"type": "depth", "enabled": "no"}, "b": {"type": "canny", "enabled": false}}'
    assert list(controls.load_marks(bad)) == ["b"]
