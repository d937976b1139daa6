"""Warp, occlusion masks, keyframe blending and the render modes (shared/animation) on a
synthetic scene whose motion is known exactly: a square sliding over a still wall."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.shared.animation.consistency import score
from dreamwire.shared.animation.motion import (
    FrameMotion,
    MotionError,
    flow_path,
    from_blender_vector,
    load_motion,
    save_motion,
)
from dreamwire.shared.animation.occlusion import OcclusionSettings, grow, reliable
from dreamwire.shared.animation.propagate import blend, keyframes
from dreamwire.shared.animation.sequence import Mode, RequestGroup, SequenceSettings, run
from dreamwire.shared.animation.warp import Carry, pixel_grid, sample, sample_cubic, warp

H, W = 24, 32
SPEED = 3  # pixels per frame, to the right
SIZE = 8


def square_x(t: int) -> int:
    return 4 + SPEED * t


def scene(t: int) -> FrameMotion:
    """Square (id 2, depth 5) at x = square_x(t), rows 8..15, over a wall (id 1, depth 10)."""
    to_prev = np.zeros((H, W, 2), np.float32)
    to_next = np.zeros((H, W, 2), np.float32)
    depth = np.full((H, W), 10.0, np.float32)
    ids = np.ones((H, W), np.int32)
    x = square_x(t)
    sq = (slice(8, 8 + SIZE), slice(x, x + SIZE))
    to_prev[sq] = (-SPEED, 0)
    to_next[sq] = (SPEED, 0)
    depth[sq] = 5.0
    ids[sq] = 2
    return FrameMotion(to_prev, to_next, depth, ids)


def texture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3)).astype(np.uint8)


def render(t: int) -> np.ndarray:
    """The scene's 'true' look: the wall's texture, the square's own texture riding on it."""
    img = texture(1).copy()
    sq_tex = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    x = square_x(t)
    img[8 : 8 + SIZE, x : x + SIZE] = sq_tex
    return img


def uncovered(t: int) -> np.ndarray:
    """Wall pixels at t that the square hid at t-1."""
    m = np.zeros((H, W), bool)
    m[8 : 8 + SIZE, square_x(t - 1) : square_x(t)] = True
    return m


def test_blender_vector_pass_becomes_y_down_to_prev_and_to_next():
    v = np.zeros((2, 2, 4), np.float32)
    v[0, 1] = (-3.0, 2.0, -4.0, 1.0)  # X, Y (up), Z, W as Blender writes them
    to_prev, to_next = from_blender_vector(v)
    assert to_prev[0, 1].tolist() == [-3.0, -2.0]  # previous position: left and up
    assert to_next[0, 1].tolist() == [4.0, 1.0]  # next: right and down
    with pytest.raises(MotionError, match="4 channels"):
        from_blender_vector(np.zeros((2, 2, 2)))


def test_flow_files_round_trip_and_bad_ones_are_refused(tmp_path):
    m = scene(1)
    path = flow_path(tmp_path, 7)
    save_motion(path, m)
    assert path.name == "frame_0007.npz" and [p.name for p in tmp_path.iterdir()] == [path.name]
    back = load_motion(path)
    assert np.array_equal(back.to_prev, m.to_prev) and np.array_equal(
        back.object_index, m.object_index
    )
    np.savez(tmp_path / "bad.npz", flow=np.zeros((2, 2, 2)))
    with pytest.raises(MotionError, match="to_prev"):
        load_motion(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MotionError, match="cannot read"):
        load_motion(tmp_path / "junk.npz")
    with pytest.raises(MotionError, match="H x W x 2"):
        FrameMotion(np.zeros((2, 2, 2)), np.zeros((2, 3, 2)))


def test_warp_moves_pixels_along_the_motion_and_interpolates_between_them():
    img = texture(3)
    shift = np.zeros((H, W, 2), np.float32)
    shift[..., 0] = -2  # every pixel was 2 to the left in the previous frame
    out = warp(img, shift)
    assert np.array_equal(out[:, 2:], img[:, :-2])
    # Between pixels: bilinear taps average the two neighbours; the cubic taps the warp
    # uses are exact on a ramp (Catmull-Rom reproduces linear functions) ...
    grid = pixel_grid(H, W) + [-0.5, 0]
    expect = (img[:, :-1].astype(float) + img[:, 1:]) / 2
    assert np.abs(sample(img, grid)[:, 1:] - expect).max() < 1e-3
    ramp = np.repeat(np.arange(W, dtype=np.float32)[None, :, None] * 7, H, 0)
    assert np.abs(sample_cubic(ramp, grid)[:, 2:-1] - (ramp[:, 2:-1] - 3.5)).max() < 1e-3

    # ... and keep more of the detail when a picture is warped again and again.
    def detail(a):
        return np.abs(np.diff(a.astype(float), axis=1)).mean()

    soft, sharp = img.astype(np.float32), img.astype(np.float32)
    for _ in range(6):
        soft, sharp = sample(soft, grid + [0.25, 0]), sample_cubic(sharp, grid + [0.25, 0])
    assert detail(sharp[:, :-8]) > 1.5 * detail(soft[:, :-8])


def test_the_true_motion_rebuilds_the_next_frame_except_where_the_wall_was_hidden():
    here, there = scene(2), scene(1)
    ok = reliable(here, there, True, OcclusionSettings())
    hidden = uncovered(2)
    assert not ok[hidden].any()
    # Everything else is carried, apart from the square's trailing outline where the
    # bilinearly sampled vectors mix square and wall.
    assert ok[~hidden].mean() > 0.97
    warped = warp(render(1), here.to_prev)
    assert np.array_equal(warped[ok], render(2)[ok])
    # Backwards in time the square's leading edge uncovers the wall instead.
    back = reliable(scene(1), scene(2), False, OcclusionSettings())
    assert not back[8 : 8 + SIZE, square_x(1) + SIZE : square_x(2) + SIZE].any()


def test_each_test_catches_what_it_should():
    s = OcclusionSettings()
    base = scene(2)
    # Same motion but the object id changed (something passed in front): refused there.
    other = scene(2)
    other.object_index[0:4, 0:4] = 7
    ok = reliable(base, other, True, s)
    assert not ok[0:4, 0:4].any() and ok[20:, 20:].all()
    # Same id, depth jumped (a turning object hid part of itself): refused there.
    deeper = scene(2)
    deeper.depth[0:4, 0:4] = 20.0
    assert not reliable(base, deeper, True, s)[0:4, 0:4].any()
    # A small depth change (a camera dolly) is fine.
    dolly = scene(2)
    dolly.depth *= 1.05
    assert reliable(base, dolly, True, s)[20:, 20:].all()
    # Pixels whose previous position is off the picture are not carried.
    left = FrameMotion(
        np.full((H, W, 2), (-5, 0), np.float32), np.full((H, W, 2), (5, 0), np.float32)
    )
    ok = reliable(left, left, True, s)
    assert not ok[:, :4].any() and ok[:, 6:].all()


def test_grow_widens_a_mask_by_whole_pixels():
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    assert grow(m, 0).sum() == 1 and grow(m, 1).sum() == 9 and grow(m, 2).sum() == 25


def limb_over_body(limb_depth: float) -> tuple[FrameMotion, np.ndarray]:
    """One object (id 1): a body at depth 5 with a limb 3 px wide in front of it, and the
    unreliable strip of body the limb has just uncovered, right beside the limb."""
    depth = np.full((H, W), np.inf, np.float32)
    ids = np.zeros((H, W), np.int32)
    depth[4:20, 4:28], ids[4:20, 4:28] = 5.0, 1
    depth[4:20, 14:17] = limb_depth
    still = np.zeros((H, W, 2), np.float32)
    unreliable = np.zeros((H, W), bool)
    unreliable[8:16, 17:20] = True
    return FrameMotion(still, still, depth, ids), unreliable


def test_growth_stays_on_its_surface_and_spares_a_thin_limb_in_front():
    surface, unreliable = limb_over_body(limb_depth=4.6)  # 8 % nearer: another surface
    plain = grow(unreliable, 2)
    assert plain[8:16, 15:17].all()  # growing blindly eats two of the limb's three columns
    grown = grow(unreliable, 2, surface, edge_share=0.05)
    assert not grown[:, 14:17].any()  # the limb stays carried whole
    # On the body the mask grows as before: right, up and down, and no further.
    np.testing.assert_array_equal(grown[:, 17:], plain[:, 17:])
    # Nor does it leave the body for the empty background (no depth) beyond it.
    surface2, _ = limb_over_body(limb_depth=5.0)
    edge = np.zeros((H, W), bool)
    edge[10, 25:28] = True
    out = grow(edge, 2, surface2, edge_share=0.05)
    assert out[8:13, 23:28].all() and not out[:, 28:].any()


def test_growth_crosses_a_depth_step_within_the_edge_share():
    # A limb only 2 % nearer than the body is the same surface to the mask: grown into.
    surface, unreliable = limb_over_body(limb_depth=4.9)
    np.testing.assert_array_equal(
        grow(unreliable, 2, surface, edge_share=0.05), grow(unreliable, 2)
    )


def test_carries_chain_frame_by_frame_and_lose_trust_once_lost():
    s = OcclusionSettings()
    c = Carry.identity(H, W)
    for t in (2, 3):
        c = c.step(scene(t).to_prev, reliable(scene(t), scene(t - 1), True, s))
    # The square's pixels at frame 3 map two steps back, to where it was at frame 1.
    x3 = square_x(3)
    assert c.coords[10, x3 + 3].tolist() == [x3 + 3 - 2 * SPEED, 10]
    assert c.valid[10, x3 + 3]
    carried = np.clip(np.rint(c.apply(render(1))), 0, 255).astype(np.uint8)
    assert np.array_equal(carried[c.valid], render(3)[c.valid])
    # Wall uncovered at frame 2 or 3 was never seen at frame 1.
    assert not c.valid[uncovered(3)].any() and not c.valid[uncovered(2)].any()


def test_keyframe_choice_and_blending_by_distance():
    assert keyframes(list(range(1, 11)), 4) == [1, 5, 9, 10]
    assert keyframes(list(range(1, 11)), 4, marked=[3, 42]) == [1, 3, 5, 9, 10]
    with pytest.raises(ValueError):
        keyframes([1, 2], 0)
    a_img = np.full((2, 2, 3), 0, np.uint8)
    b_img = np.full((2, 2, 3), 200, np.uint8)
    ca, cb = Carry.identity(2, 2), Carry.identity(2, 2)
    ca.valid[0, 0] = False  # only b sees pixel (0, 0)
    cb.valid[1, 1] = False  # only a sees pixel (1, 1)
    ca.valid[0, 1] = cb.valid[0, 1] = False  # neither sees (0, 1)
    out, unseen = blend(a_img, ca, b_img, cb, 2, 1, 5)  # a quarter of the way: 3/4 a
    assert out[1, 0, 0] == 50 and out[0, 0, 0] == 200 and out[1, 1, 0] == 0
    assert unseen.tolist() == [[False, True], [False, False]]


class Store:
    """FrameIO over dicts: the scene's motion, and the frames made so far."""

    def __init__(self, done=None):
        self.images = dict(done or {})
        self.motion_calls = []

    def motion(self, f):
        self.motion_calls.append(f)
        return scene(f)

    def load(self, f):
        return self.images.get(f)

    def save(self, f, image):
        self.images[f] = image


def drive(frames, settings, store, generate):
    gen = run(frames, settings, store)
    requests = []
    try:
        req = next(gen)
        while True:
            requests.append(req)
            req = gen.send(generate(req))
    except StopIteration as stop:
        return requests, stop.value


def true_look(req):
    """A stand-in that paints the scene's true look where it generates."""
    out = render(req.frame)
    if req.mask is not None:
        return np.where(req.mask[..., None] > 0, out, req.init)
    return out


def test_warp_mode_inpaints_only_the_uncovered_wall_then_refreshes_lightly():
    s = SequenceSettings(Mode.WARP, denoise=0.25, occlusion=OcclusionSettings(grow=1))
    store = Store()
    requests, reports = drive([1, 2, 3], s, store, true_look)
    assert [(r.frame, r.kind) for r in requests] == [
        (1, "txt2img"),
        (2, "inpaint"),
        (2, "img2img"),
        (3, "inpaint"),
        (3, "img2img"),
    ]
    inpaint = requests[1]
    assert inpaint.strength == 1.0 and requests[2].strength == 0.25
    mask = inpaint.mask > 0
    assert mask[uncovered(2)].all()  # every uncovered pixel is generated
    assert mask.mean() < 3 * grow(uncovered(2), 1).mean()  # and not much else
    # The warped frame it starts from already is the true frame where it was carried.
    keep = ~mask
    assert np.array_equal(inpaint.init[keep], render(2)[keep])
    assert [r.source for r in reports] == ["generated", "warped", "warped"]
    assert reports[1].regenerated == pytest.approx(mask.mean())
    assert reports[1].cost == pytest.approx(1.25)


def test_a_stopped_warp_render_resumes_from_the_frame_on_disk():
    s = SequenceSettings(Mode.WARP, denoise=0.0)
    store = Store({1: render(1), 2: render(2)})
    requests, reports = drive([1, 2, 3], s, store, true_look)
    assert [(r.frame, r.kind) for r in requests] == [(3, "inpaint")]
    assert sorted(set(store.motion_calls)) == [2, 3]  # frame 1's motion is not needed
    assert [r.source for r in reports] == ["on disk", "on disk", "warped"]
    assert np.array_equal(store.images[3], render(3))


def test_keyframes_generate_keys_and_only_what_neither_key_sees():
    s = SequenceSettings(
        Mode.KEYFRAMES, denoise=0.0, key_every=3, occlusion=OcclusionSettings(grow=0)
    )
    store = Store()
    requests, reports = drive([1, 2, 3, 4], s, store, true_look)
    kinds = [(r.frame, r.kind) for r in requests]
    assert kinds[0] == (1, "txt2img") and (4, "inpaint") in kinds
    # Frames 2 and 3 lie between keys 1 and 4: the wall uncovered there is seen by key 4,
    # so nothing but the square's outline pixels (where neither carry is trusted) is made.
    for r in requests:
        if r.frame in (2, 3):
            assert r.kind == "inpaint" and (r.mask > 0).mean() < 0.05
    assert [r.source for r in reports] == ["generated", "propagated", "propagated", "warped"]
    for f in (2, 3):
        assert np.abs(store.images[f].astype(int) - render(f)).mean() < 2
    # Resume: keys on disk, frame 3 missing -> only frame 3 is made.
    del store.images[3]
    requests, reports = drive([1, 2, 3, 4], s, store, true_look)
    assert {r.frame for r in requests} <= {3}
    assert [r.source for r in reports] == ["on disk", "on disk", "propagated", "on disk"]


def test_fixed_seed_and_previous_modes_and_the_motion_modes_need_every_frame():
    store = Store()
    requests, _ = drive(
        [1, 3, 5], SequenceSettings(Mode.PREVIOUS, previous_strength=0.4), store, true_look
    )
    assert [(r.kind, r.strength) for r in requests] == [
        ("txt2img", None),
        ("img2img", 0.4),
        ("img2img", 0.4),
    ]
    assert np.array_equal(requests[1].init, render(1))
    requests, _ = drive([1, 2], SequenceSettings(), Store(), true_look)
    assert [r.kind for r in requests] == ["txt2img", "txt2img"]
    with pytest.raises(ValueError, match="frame step"):
        drive([1, 3], SequenceSettings(Mode.WARP), Store(), true_look)


def test_consistency_score_is_low_for_sticking_detail_and_high_for_flicker():
    frames = [1, 2, 3]
    motions = {f: scene(f) for f in frames}
    steady = score(frames, {f: render(f) for f in frames}, motions)
    flicker = score(frames, {f: texture(10 + f) for f in frames}, motions)
    assert [p.frame for p in steady] == [2, 3]
    assert max(p.error for p in steady) < 0.5 and min(p.error for p in flicker) > 50
    assert all(0.7 < p.carried < 1 for p in steady)
    assert pixel_grid(2, 3)[1, 2].tolist() == [2, 1]


def test_a_limb_uncovering_its_own_body_is_found_by_the_z_buffer():
    # One object (id 1): a body at depth 5 moving 30 px a frame, a limb 2 % nearer moving
    # 32. The 2 px of body the limb uncovers keep the id and the depth tolerance, and the
    # round trip through the limb misses by 2 px, inside its allowance for a 30 px move.
    h, w, lx = 6, 80, {1: 10, 2: 42}

    def frame(t: int) -> FrameMotion:
        to_prev = np.full((h, w, 2), (-30, 0), np.float32)
        to_next = np.full((h, w, 2), (30, 0), np.float32)
        depth = np.full((h, w), 5.0, np.float32)
        limb = (slice(None), slice(lx[t], lx[t] + 6))
        to_prev[limb], to_next[limb], depth[limb] = (-32, 0), (32, 0), 4.9
        return FrameMotion(to_prev, to_next, depth, np.ones((h, w), np.int32))

    uncovered = np.zeros((h, w), bool)
    uncovered[:, 40:42] = True
    before = reliable(frame(2), frame(1), True, OcclusionSettings(surface_tests=False))
    assert before[uncovered].all()  # the tests as they were carried the limb onto the body
    ok = reliable(frame(2), frame(1), True, OcclusionSettings())
    assert not ok[uncovered].any()
    assert ok[:, 30:][~uncovered[:, 30:]].all()  # the rest of the body and the limb carried


class Patches(Store):
    """A still wall; frames 2-4 each show a patch of their own that frames 1 and 5 lack."""

    def motion(self, f):
        still = np.zeros((H, W, 2), np.float32)
        depth, ids = np.full((H, W), 10.0, np.float32), np.ones((H, W), np.int32)
        if 2 <= f <= 4:
            depth[4 * f : 4 * f + 3, 4:8], ids[4 * f : 4 * f + 3, 4:8] = 5.0, f
        return FrameMotion(still, still, depth, ids)


def test_in_betweens_come_as_one_group_and_are_saved_in_frame_order():
    s = SequenceSettings(Mode.KEYFRAMES, key_every=4, denoise=0.0)
    alone, reports = drive(list(range(1, 6)), s, Patches(), true_look)
    store, saved, groups = Patches(), [], []
    store.save = lambda f, image: (saved.append(f), store.images.__setitem__(f, image))
    gen = run(list(range(1, 6)), s, store, groups=True)
    message = next(gen)
    try:
        while True:
            if isinstance(message, RequestGroup):
                groups.append([r.frame for r in message.requests])
                for r in reversed(message.requests):  # in any order: saved in frame order
                    message.deliver(r.frame, true_look(r))
                message = gen.send(None)
            else:
                message = gen.send(true_look(message))
    except StopIteration as stop:
        assert stop.value == reports  # the same frames as one request at a time
    assert [r.frame for r in alone] == [1, 5, 2, 3, 4] and groups == [[2, 3, 4]]
    assert saved == [1, 5, 2, 3, 4]
    # A driver that resumes before every picture is back is told so.
    gen = run(list(range(1, 6)), s, Patches(), groups=True)
    message = next(gen)
    while not isinstance(message, RequestGroup):
        message = gen.send(true_look(message))
    with pytest.raises(ValueError, match=r"frames \[2, 3, 4\]"):
        gen.send(None)
