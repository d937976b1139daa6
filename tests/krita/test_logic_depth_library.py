"""The depth library: the shipped maps, listing with the artist's folder, placing by max."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from dreamwire_krita.logic import depth_library as dl
from dreamwire_krita.logic.controls import ControlMark
from dreamwire_krita.logic.geometry import Rect

from dreamwire.shared.codec import decode_png, encode_png

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_depth_library", REPO / "scripts" / "make_depth_library.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_script_reproduces_the_shipped_maps_exactly():
    made = _script().build()
    shipped = {p.relative_to(dl.BUNDLED).as_posix() for p in dl.BUNDLED.rglob("*.png")}
    assert shipped == set(made)
    total = 0
    for rel, grey in made.items():
        data = (dl.BUNDLED / rel).read_bytes()
        total += len(data)
        # Pixels, not bytes: another zlib may deflate the same pixels differently.
        assert np.array_equal(decode_png(data)[:, :, 0], grey), rel
    assert total < 300_000


def test_shipped_maps_are_grey_near_white_on_black_with_hands_both_ways():
    listing = dl.list_assets(dl.BUNDLED, None)
    assert not listing.problems
    assert listing.categories() == ["hands", "poses"]
    names = {a.name for a in listing.in_category("hands")}
    for pose in ("open", "relaxed", "fist", "pointing"):
        assert {f"{pose}_left", f"{pose}_right"} <= names
    for asset in listing.assets:
        data = asset.path.read_bytes()
        assert dl.check(data[:64], asset.key) and decode_png(data).shape[2] == 1  # 8-bit grey
        grey = dl.load(asset)
        # Black all round the border (nothing there), a figure whose nearest point is white.
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if asset.category == "hands":  # the wrist leaves through the bottom edge
            border = np.concatenate([grey[0], grey[:, 0], grey[:, -1]])
        assert border.max() == 0 and grey.max() == 255, asset.key
        assert 0.05 < (grey > 0).mean() < 0.6, asset.key
    right = dl.load(next(a for a in listing.assets if a.name == "open_right"))
    left = dl.load(next(a for a in listing.assets if a.name == "open_left"))
    assert np.array_equal(left, right[:, ::-1]) and not np.array_equal(left, right)


def test_the_artists_folder_adds_and_replaces_maps_and_names_broken_files(tmp_path):
    bundled, user = tmp_path / "bundled", dl.user_folder(tmp_path / "res")
    assert user == tmp_path / "res" / "dreamwire" / "depth"
    (bundled / "hands").mkdir(parents=True)
    (user / "hands").mkdir(parents=True)
    (user / "props").mkdir()
    grey = np.zeros((8, 8), np.uint8)
    grey[2:6, 2:6] = 200
    (bundled / "hands" / "fist.png").write_bytes(encode_png(grey))
    (bundled / "hands" / "open.png").write_bytes(encode_png(grey))
    (user / "hands" / "fist.png").write_bytes(encode_png(grey // 2))
    (user / "props" / "sword.png").write_bytes(encode_png(grey))
    (user / "loose.png").write_bytes(encode_png(grey))
    (user / "props" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (user / "props" / "notes.txt").write_text("hi")
    huge = encode_png(np.zeros((1, dl.MAX_SIDE + 1), np.uint8))
    (user / "props" / "huge.png").write_bytes(huge)
    listing = dl.list_assets(bundled, user)
    assert [a.key for a in listing.assets] == [
        "General/loose",
        "hands/fist",
        "hands/open",
        "props/sword",
    ]
    fist = listing.assets[1]
    assert not fist.builtin and dl.load(fist).max() == 100  # the artist's replaces the shipped
    assert listing.assets[2].builtin
    assert len(listing.problems) == 3
    assert listing.problems[0].startswith("props/broken.png: ")
    assert listing.problems[1] == "props/huge.png: 4097x1 is larger than 4096 px a side"
    assert listing.problems[2].startswith("props/notes.txt: not a PNG")
    # A file that breaks after listing is reported when loaded, by name.
    (user / "props" / "sword.png").write_bytes(encode_png(grey)[:40])
    with pytest.raises(dl.DepthAssetError, match="props/sword"):
        dl.load(listing.assets[3])


def test_colour_sixteen_bit_and_alpha_maps_become_grey_depth():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 200, 200, 255)
    rgba[0, 1] = (200, 200, 200, 128)  # half transparent: half as near
    rgba[1, 0] = (255, 0, 0, 255)
    assert dl.decode(encode_png(rgba), "x").tolist() == [[200, 100], [76, 0]]
    wide = np.array([[65535, 32896]], np.uint16)
    assert dl.decode(encode_png(wide), "x").tolist() == [[255, 128]]


def test_place_scales_rotates_flips_and_crops_to_the_canvas():
    depth = np.zeros((10, 20), np.uint8)
    depth[:, :10] = 100  # left half near, right half nothing
    depth[4:6, 2:4] = 250
    canvas = Rect(0, 0, 100, 80)
    one = dl.place(depth, dl.Placement(50, 40), canvas)
    assert one.rect == Rect(40, 35, 20, 10)
    assert np.array_equal(one.rgba[:, :, 0], depth)  # scale 1, no turn: the map itself
    assert set(np.unique(one.rgba[:, :, 3])) == {0, 255}
    assert (one.rgba[:, :, 3] == 0).sum() == (depth == 0).sum()
    flipped = dl.place(depth, dl.Placement(50, 40, flip=True), canvas)
    assert np.array_equal(flipped.rgba[:, :, 0], depth[:, ::-1])
    # A quarter turn clockwise: the near half (left) ends up on top.
    turned = dl.place(depth, dl.Placement(50, 40, rotation=90), canvas)
    assert turned.rect == Rect(45, 30, 10, 20)
    assert np.array_equal(turned.rgba[:, :, 0], np.rot90(depth, -1))
    double = dl.place(depth, dl.Placement(50, 40, scale=2.0, depth=0.5), canvas)
    assert double.rect == Rect(30, 30, 40, 20)
    assert double.rgba[:, :, 0].max() == 125 and double.rgba[5, 5, 0] == 50
    # Half off the left edge: cropped; wholly off: nothing.
    edge = dl.place(depth, dl.Placement(2, 40), canvas)
    assert edge.rect == Rect(0, 35, 12, 10)
    assert np.array_equal(edge.rgba[:, :, 0], depth[:, 8:])
    assert dl.place(depth, dl.Placement(-50, 40), canvas) is None
    with pytest.raises(ValueError):
        dl.Placement(0, 0, scale=0)


def test_fitting_centres_on_the_selection_or_canvas():
    p = dl.fitting((256, 256), Rect(0, 0, 512, 400))
    assert (p.x, p.y, p.scale) == (256, 200, round(200 / 256, 3))
    q = dl.fitting((256, 128), Rect(0, 0, 512, 400), at=Rect(10, 20, 100, 60))
    assert (q.x, q.y, q.scale) == (60, 50, round(30 / 256, 3))


def test_composite_max_nearer_wins_and_leaves_the_rest():
    under = np.zeros((2, 3, 4), np.uint8)
    under[0] = (120, 120, 120, 255)  # an opaque depth row
    over = np.zeros((2, 3, 4), np.uint8)
    over[:, 1] = (200, 200, 200, 255)
    over[0, 2] = (60, 60, 60, 255)  # further back than what is there: loses
    out = dl.composite_max(under, over)
    assert out[0, 0].tolist() == [120, 120, 120, 255]  # no map: kept
    assert out[0, 1].tolist() == [200, 200, 200, 255]
    assert out[0, 2].tolist() == [120, 120, 120, 255]
    assert out[1, 1].tolist() == [200, 200, 200, 255]  # over transparent: the map
    assert out[1, 0].tolist() == [0, 0, 0, 0] and out[1, 2].tolist() == [0, 0, 0, 0]


def test_target_is_the_nearest_depth_control_else_a_new_group():
    depth, pose = ControlMark("depth"), ControlMark("openpose")
    paint = dl.NodeInfo("p", "paintlayer")
    group = dl.NodeInfo("g", "grouplayer")
    assert dl.target([paint], {}) == dl.Target("new")
    assert dl.target([paint], {"p": pose}) == dl.Target("new")
    assert dl.target([paint], {"p": depth}) == dl.Target("merge", "p")
    assert dl.target([group], {"g": depth}) == dl.Target("group", "g")
    assert dl.target([paint, group], {"g": depth}) == dl.Target("group", "g")
    vector = dl.NodeInfo("v", "vectorlayer")
    assert dl.target([vector], {"v": depth}) == dl.Target("new")
    # The artist's own layer stayed active after the last placement: the same group again,
    # while it is still a depth control.
    assert dl.target([paint], {"g": depth}, recent="g") == dl.Target("group", "g")
    assert dl.target([paint], {"g": pose}, recent="g") == dl.Target("new")
    assert dl.target([paint], {}, recent="g") == dl.Target("new")
