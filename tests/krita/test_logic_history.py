"""The docker's history: batches as one choice, search by prompt, thumbnails, and the
compact form saved in the document."""

from __future__ import annotations

import numpy as np
from dreamwire_krita.logic import history as hist
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.history import Entry, History
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import plan_generate, plan_inpaint

CANVAS = Rect(0, 0, 96, 64)
RNG = np.random.default_rng(5)


def entry(prompt="a lighthouse at dusk", seed=21, job="j1", applied=False, w=96, h=64, mask=False):
    image = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    plan = plan_inpaint(CANVAS, Rect(8, 8, w, h)) if mask else plan_generate(CANVAS, None)
    m = RNG.integers(0, 256, (h, w), dtype=np.uint8) if mask else None
    p = Params(prompt=prompt, seed=seed, steps=3, model="tiny-sd1")
    return Entry(
        image, seed, f"{prompt}\nSeed: {seed}", p, plan, m, f"{prompt} · DW {seed}", job, applied
    )


def test_a_batch_is_one_group_in_its_order_and_is_not_repeated():
    h = History()
    h.add_batch([entry(seed=1, job="a"), entry(seed=2, job="a")])
    h.add_batch([entry(seed=5, job="b"), entry(seed=6, job="b"), entry(seed=7, job="b")])
    assert [e.seed for e in h.entries] == [5, 6, 7, 1, 2]
    v = h.version
    h.add_batch([entry(seed=6, job="b")])  # loaded twice: known by job and seed
    assert len(h) == 5 and h.version == v + 1
    assert h.index("b:7") == 2 and h.index("b:8") is None
    assert h.remove(0).seed == 5 and h.version == v + 2


def test_search_finds_every_word_of_the_query_in_the_prompt_ignoring_case():
    h = History()
    h.add_batch([entry("A red fox in snow", job="a"), entry("a blue lighthouse", job="b")])
    h.add(entry("foxglove and lighthouse", job="c"))
    assert hist.search(h, "") == [0, 1, 2]
    assert hist.search(h, "FOX") == [0, 1]  # newest first: "foxglove" too
    assert hist.search(h, "fox lighthouse") == [0]
    assert hist.search(h, "red  snow") == [1]
    assert hist.search(h, "zebra") == []


def test_thumbnail_is_the_box_average_within_the_side():
    img = RNG.integers(0, 256, (300, 200, 4), dtype=np.uint8)
    t = hist.thumbnail(img, 80)
    assert t.shape == (75, 50, 4) and t.dtype == np.uint8
    block = img[4:8, 8:12].reshape(-1, 4).mean(axis=0)
    assert np.abs(t[1, 2].astype(float) - block).max() <= 0.5
    small = img[:40, :30]
    assert np.array_equal(hist.thumbnail(small, 80), small)


def test_summary_leads_with_the_prompt_and_says_what_made_it():
    e = entry("(masterpiece:1.2), a fox <lora:x:1>", seed=77, applied=True)
    first, second = e.summary().split("\n")
    assert first.startswith("masterpiece") and "lora" not in first
    assert "seed 77" in second and "3 steps" in second and "96x64" in second
    assert "tiny-sd1" in second and second.endswith("applied")


def test_saved_history_round_trips_settings_thumbnails_and_unapplied_images():
    entries = [entry(seed=1, job="a", mask=True), entry(seed=2, job="a", applied=True)]
    data = hist.dump(entries)
    back = hist.load(data)
    assert [(e.seed, e.job_id, e.applied, e.layer_name) for e in back] == [
        (e.seed, e.job_id, e.applied, e.layer_name) for e in entries
    ]
    for a, b in zip(entries, back, strict=True):
        assert b.params == a.params and b.plan == a.plan and b.infotext == a.infotext
        assert np.array_equal(b.thumb, a.thumb)
    # The image not applied yet comes back whole, mask and all: it can still be applied.
    assert np.array_equal(back[0].image, entries[0].image)
    assert np.array_equal(back[0].mask, entries[0].mask)
    # The applied one is in a layer already: only its thumbnail and settings are kept.
    assert back[1].image is None and back[1].mask is None
    assert len(data) < entries[0].image.nbytes * 2 + 2 * entries[0].thumb.nbytes + 4096


def test_full_images_are_kept_only_within_the_budget_newest_first():
    entries = [entry(seed=i, job="a", w=256, h=256) for i in range(3)]
    one = len(hist.dump(entries[:1])) - len(hist.dump(entries[:1], budget=0))
    back = hist.load(hist.dump(entries, budget=int(one * 2.5)))
    assert [e.image is not None for e in back] == [True, True, False]
    assert back[2].thumb is not None and back[2].thumb.shape[:2] == (64, 64)  # 256 / 4
    small = hist.dump(entries, budget=0)
    assert len(small) < 3 * 80 * 80 * 4 + 4096  # thumbnails and settings only


def test_damaged_or_foreign_data_loads_as_no_history():
    data = hist.dump([entry()])
    assert hist.load(None) == [] and hist.load(b"") == [] and hist.load(b"PNG...") == []
    assert hist.load(data[: len(data) // 2]) == []
    assert hist.load(data[:4] + b"\xff\xff\x00\x00" + data[8:]) == []


def test_a_documents_saved_entries_come_after_this_sessions_and_take_its_key():
    h = History()
    h.add(entry(seed=9, job="new"))
    h[0].doc_key = "doc-now"
    saved = hist.load(hist.dump([entry(seed=1, job="old"), entry(seed=9, job="new")]))
    assert h.add_saved(saved, "doc-now") == 1
    assert [e.key for e in h.entries] == ["new:9", "old:1"]
    assert {e.doc_key for e in h.entries} == {"doc-now"}
    assert [e.seed for e in h.of_document("doc-now")] == [9, 1] and h.of_document("x") == []
