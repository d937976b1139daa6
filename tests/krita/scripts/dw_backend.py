"""Krita against a real backend: generate, refine, inpaint, outpaint, controls, cancel, loss."""

import os
import signal
import time

import dwtest
import numpy as np


def main(*_):
    dwtest.run(check)


def _names(doc):
    from dreamwire_krita import krita_host as host

    return [
        (n.name(), n.type()) for n in host.iter_nodes(doc.rootNode()) if n.type() != "selectionmask"
    ]


def _bounds(node):
    b = node.bounds()
    return [b.x(), b.y(), b.width(), b.height()]


def _wait_applied(c, n_before, timeout=120):
    ok = dwtest.pump(c, lambda: len(c.applied) > n_before or c.status.level == "error", timeout)
    return ok and len(c.applied) > n_before


def _previews(c, cfg, base, canvas):
    """The docker's way: a batch waits in the history as previews, one is applied, and the
    history comes back with the saved .kra (into a Controller that never saw it)."""
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.controller import Controller
    from dreamwire_krita.logic import history as hist
    from dreamwire_krita.logic.params import Params
    from dreamwire_krita.logic.settings import Settings
    from krita import Krita

    k = Krita.instance()
    start = time.monotonic()
    doc = k.createDocument(64, 64, "previews", "RGBA", "U8", "", 72.0)
    paint = host.add_result_layer(
        doc, doc.rootNode(), "paint", canvas[:64, :64].copy(), host.canvas_rect(doc), None
    )[0]
    host.refresh(doc)
    doc.setActiveNode(paint)
    c.preview_results = True
    before = _names(doc)
    jid = c.generate(Params(**base | {"batch": 2}, seed=40), doc)
    ok = dwtest.pump(c, lambda: c.shown is not None or c.status.level == "error", 120)
    r = {"ok": ok, "message": c.status.message, "names_preview": [n for n, _ in _names(doc)]}
    batch = [e for e in c.history.entries if e.job_id == jid]
    t = batch[0].plan.target

    def preview_shows(i):
        layer = host.find_node(doc, c.shown.node_id)
        got = host.pixels.bgra_to_rgba(layer.pixelData(t.x, t.y, t.w, t.h), t.w, t.h)
        return bool(np.array_equal(got, batch[i].image))

    r["batch"] = [(e.seed, e.applied) for e in batch]
    r["shows_first"] = preview_shows(0)
    c.show_preview(c.history.index(batch[1].key), doc)
    r["shows_second"] = preview_shows(1)
    r["preview_layers"] = [n for n, _ in _names(doc)].count(hist.PREVIEW_LAYER)
    name = c.apply(c.history.index(batch[1].key), doc)
    layer = [n for n in doc.rootNode().childNodes() if n.name() == name]
    r["applied"] = name
    r["names_after"] = [n for n, _ in _names(doc)]
    r["added"] = len(_names(doc)) - len(before)
    r["applied_exact"] = bool(
        layer
        and np.array_equal(
            host.pixels.bgra_to_rgba(layer[0].pixelData(t.x, t.y, t.w, t.h), t.w, t.h),
            batch[1].image,
        )
    )
    # Saved with the document, opened again by a docker that never saw these results.
    path = os.path.join(cfg["dump"], "previews.kra")
    doc.setBatchmode(True)
    r["saved"] = bool(doc.saveAs(path))
    doc.close()
    again = k.openDocument(path)
    fresh = Controller(settings=Settings(address=cfg["address"]))
    r["loaded"] = fresh.load_history(again)
    r["loaded_again"] = fresh.load_history(again)  # once per document
    got = fresh.history.entries
    r["loaded_batch"] = [(e.seed, e.applied, e.image is not None) for e in got]
    r["loaded_image_exact"] = bool(got and np.array_equal(got[0].image, batch[0].image))
    r["loaded_prompt"] = got[0].params.prompt if got else ""
    n = len(_names(again))
    r["applied_after_reopen"] = fresh.apply(0, again)
    r["added_after_reopen"] = len(_names(again)) - n
    r["kra_bytes"] = os.path.getsize(path)
    r["annotation_bytes"] = len(host.annotation(again, hist.ANNOTATION_TYPE) or b"")
    again.close()
    c.preview_results = False
    r["seconds"] = round(time.monotonic() - start, 1)
    return r


def check(cfg):
    import dreamwire_krita  # noqa: F401
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.controller import Controller
    from dreamwire_krita.logic import controls as ctl
    from dreamwire_krita.logic.geometry import Rect
    from dreamwire_krita.logic.params import Params
    from dreamwire_krita.logic.settings import Settings
    from krita import Krita, Selection

    k = Krita.instance()
    out = {}
    c = Controller(settings=Settings(address=cfg["address"]))
    c.connect()
    out["connected"] = dwtest.pump(c, lambda: c.session.state == "connected", 60)
    out["welcome_models"] = list(c.welcome.models) if c.welcome else None
    base = dict(prompt="a red fox, (snow:1.2)", steps=2, cfg=5.0, model="tiny-sd1")

    def paint(doc, rgba, name="paint"):
        layer, _ = host.add_result_layer(
            doc, doc.rootNode(), name, rgba, Rect(0, 0, rgba.shape[1], rgba.shape[0]), None
        )
        host.refresh(doc)
        return layer

    rng = np.random.default_rng(5)
    canvas = rng.integers(0, 256, (80, 100, 4), dtype=np.uint8)
    canvas[..., 3] = 255

    # -- generate at the selection's bounds, batch of 2 ----------------------------------------
    doc = k.createDocument(100, 80, "gen", "RGBA", "U8", "", 72.0)
    sel = Selection()
    sel.select(10, 12, 50, 40, 255)
    doc.setSelection(sel)
    n = len(c.applied)
    jid = c.generate(Params(**base, seed=1234, batch=2), doc)
    ok = _wait_applied(c, n)
    top = doc.rootNode().childNodes()[-1]
    out["generate_sel"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "group": [top.name(), top.type()],
        "layers": [(ch.name(), ch.type(), _bounds(ch)) for ch in top.childNodes()],
        "seeds": [a["seed"] for a in c.applied[n:]],
        "pixels_match_result": [
            bool(
                np.array_equal(
                    host.pixels.bgra_to_rgba(ch.pixelData(10, 12, 50, 40), 50, 40),
                    e.image,
                )
            )
            for ch, e in zip(top.childNodes(), reversed(c.history.entries[:2]), strict=True)
        ],
        "job_size": [c.last_job.width, c.last_job.height],
    }

    # -- generate at document size ---------------------------------------------------------------
    doc.setSelection(Selection())
    doc2 = k.createDocument(100, 80, "gen2", "RGBA", "U8", "", 72.0)
    n = len(c.applied)
    c.generate(Params(**base, seed=7), doc2)
    ok = _wait_applied(c, n)
    layer = doc2.rootNode().childNodes()[-1].childNodes()[0]
    out["generate_doc"] = {
        "ok": ok,
        "bounds": _bounds(layer),
        "job_size": [c.last_job.width, c.last_job.height],
    }

    # -- select by clicking: dots on the 'clicks' layer -> SAM 2 -> the selection ---------------
    # A green 3 x 3 dot on pixels 29..31 x 39..41 (centre 30.5, 40.5) and a red one centred
    # on (70.5, 20.5), on a layer of their own over the picture.
    docs = k.createDocument(100, 80, "select", "RGBA", "U8", "", 72.0)
    paint(docs, canvas)
    dots = np.zeros((80, 100, 4), np.uint8)
    dots[39:42, 29:32] = (0, 255, 0, 255)
    dots[19:22, 69:72] = (255, 0, 0, 255)
    marks = paint(docs, dots, "clicks")
    jid = c.select_by_clicking(Params(**base), docs)
    ok = dwtest.pump(
        c, lambda: c.status.message.startswith("Selected") or c.status.level == "error", 120
    )
    ok = ok and c.status.message.startswith("Selected")
    if docs.selection() is not None:
        np.save(
            cfg["dump"] + "/select-selection.npy", host.read_selection(docs, Rect(0, 0, 100, 80))
        )
    np.save(cfg["dump"] + "/select-canvas.npy", canvas)
    out["select"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "dots_visible": bool(marks.visible()),
    }
    # Select subject on the same canvas: the backend's rembg model's soft mask, as it is.
    c.status.message = ""
    sjid = c.select_subject(Params(**base), docs)
    ok = dwtest.pump(
        c, lambda: c.status.message.startswith("Selected") or c.status.level == "error", 120
    )
    out["subject"] = {"job_id": sjid, "ok": ok and c.status.message == "Selected the subject."}
    out["subject"]["message"] = c.status.message
    if docs.selection() is not None:
        np.save(
            cfg["dump"] + "/subject-selection.npy", host.read_selection(docs, Rect(0, 0, 100, 80))
        )

    # -- make a control layer from the active layer: the backend's canny map above it ------------
    docc = k.createDocument(100, 80, "annotate", "RGBA", "U8", "", 72.0)
    shape = np.zeros((80, 100, 4), np.uint8)
    shape[20:60, 30:70] = (30, 40, 50, 255)
    source = paint(docc, shape, "sketch")
    paint(docc, np.zeros((80, 100, 4), np.uint8), "top")  # "above the source", not on top
    docc.setActiveNode(source)  # a document without a view may keep none: named as well
    c.status.message = ""
    cjid = c.make_control_layer("canny", Params(**base), docc, host.node_id(source))
    ok = dwtest.pump(
        c, lambda: c.status.message.startswith("Added the control") or c.status.level == "error", 60
    )
    made = [n for n in host.iter_nodes(docc.rootNode()) if n.name() == "Canny of sketch"]
    active = docc.activeNode()
    out["control_from_layer"] = {
        "job_id": cjid,
        "ok": ok and len(made) == 1,
        "message": c.status.message,
        "names": [n for n, _ in _names(docc)],
        "mark": {i: m.type for i, m in c.marks(docc).items()},
        "made_id": host.node_id(made[0]) if made else None,
        "active": active.name() if active is not None else None,
    }
    if made:
        layer = host.read_layers(docc, [host.node_id(made[0])], Rect(0, 0, 100, 80))
        np.save(cfg["dump"] + "/control-layer.npy", layer[host.node_id(made[0])])

    # -- refine the visible canvas -----------------------------------------------------------------
    doc3 = k.createDocument(100, 80, "refine", "RGBA", "U8", "", 72.0)
    paint(doc3, canvas)
    before = _names(doc3)
    n = len(c.applied)
    jid = c.refine(Params(**base, seed=3, strength=0.5), doc3)
    ok = _wait_applied(c, n)
    layer = doc3.rootNode().childNodes()[-1].childNodes()[0]
    out["refine"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "bounds": _bounds(layer),
        "kept_layers": _names(doc3)[: len(before)] == before,
        "name": layer.name(),
    }

    # -- inpaint a feathered selection -------------------------------------------------------------
    doc4 = k.createDocument(100, 80, "inpaint", "RGBA", "U8", "", 72.0)
    paint(doc4, canvas)
    vis_before = host.read_visible(doc4, Rect(0, 0, 100, 80))
    sel = Selection()
    sel.select(30, 20, 30, 30, 255)
    sel.feather(3)
    doc4.setSelection(sel)
    sel_full = host.read_selection(doc4, Rect(0, 0, 100, 80))
    n = len(c.applied)
    jid = c.inpaint(Params(**base, seed=11, strength=1.0, inpaint_fill="fill"), doc4)
    plan = c.last_job
    ok = _wait_applied(c, n)
    vis_after = host.read_visible(doc4, Rect(0, 0, 100, 80))
    out["inpaint"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "masked": c.applied[-1]["masked"] if ok else None,
        "outside_unchanged": bool(
            np.array_equal(vis_after[sel_full == 0], vis_before[sel_full == 0])
        ),
        "inside_changed": bool((vis_after[sel_full == 255] != vis_before[sel_full == 255]).any()),
        "job_outpaint": str(plan.outpaint),
        "selection_pixels": int((sel_full > 0).sum()),
    }
    np.save(cfg["dump"] + "/inpaint-selection.npy", sel_full)
    np.save(cfg["dump"] + "/inpaint-visible.npy", vis_before)

    # -- outpaint: the selection reaches past the painted content ----------------------------------
    doc5 = k.createDocument(128, 64, "outpaint", "RGBA", "U8", "", 72.0)
    bg = doc5.rootNode().childNodes()[0]
    bg.remove()  # a transparent canvas: only the painted part is content
    part = canvas[:64, :80].copy()
    layer_p, _ = host.add_result_layer(
        doc5, doc5.rootNode(), "paint", part, Rect(0, 0, 80, 64), None
    )
    host.refresh(doc5)
    vis_before = host.read_visible(doc5, Rect(0, 0, 128, 64))
    sel = Selection()
    sel.select(64, 0, 64, 64, 255)
    doc5.setSelection(sel)
    sel_full = host.read_selection(doc5, Rect(0, 0, 128, 64))
    n = len(c.applied)
    jid = c.inpaint(Params(**base, seed=12, strength=1.0, inpaint_fill="latent noise"), doc5)
    job = c.last_job
    ok = _wait_applied(c, n)
    vis_after = host.read_visible(doc5, Rect(0, 0, 128, 64))
    res_layer = doc5.rootNode().childNodes()[-1].childNodes()[0]
    out["outpaint"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "grow": [job.outpaint.left, job.outpaint.right, job.outpaint.top, job.outpaint.bottom],
        "init": list(job.init_image.shape),
        "bounds": _bounds(res_layer),
        "outside_unchanged": bool(
            np.array_equal(vis_after[sel_full == 0], vis_before[sel_full == 0])
        ),
        "filled": bool((vis_after[:, 80:, 3] == 255).all()),
    }

    # -- a control layer -------------------------------------------------------------------------
    doc6 = k.createDocument(64, 64, "control", "RGBA", "U8", "", 72.0)
    sketch = np.zeros((64, 64, 4), np.uint8)
    sketch[20:24, 8:56, 3] = 255
    sketch[8:56, 40:43, 3] = 255
    node = paint(doc6, sketch, "sketch")
    c.set_mark(host.node_id(node), ctl.ControlMark("scribble", 0.7, 0.0, 0.9), doc6)
    # Switched off: still marked and shown, but the job goes without it; on again, with it.
    switched = c.switch_control(host.node_id(node), False, doc6)
    n = len(c.applied)
    off_jid = c.generate(Params(**base, seed=5), doc6)
    off_ok = _wait_applied(c, n)
    off = {
        "job_id": off_jid,
        "ok": off_ok,
        "message": c.status.message,
        "switched": switched,
        "still_marked": [(m.type, m.enabled) for m in c.marks(doc6).values()],
        "visible": node.visible(),
    }
    c.switch_control(host.node_id(node), True, doc6)
    n = len(c.applied)
    jid = c.generate(Params(**base, seed=5), doc6)
    ok = _wait_applied(c, n)
    out["control"] = {"job_id": jid, "ok": ok, "message": c.status.message, "off": off}
    np.save(cfg["dump"] + "/control-sketch.npy", sketch)

    # -- history: insert again, copy parameters back -----------------------------------------------
    count = len(doc6.rootNode().childNodes())
    c.reinsert(0, doc6)
    copied = c.copy_params(0, Params(batch=4))
    out["history"] = {
        "entries": len(c.history),
        "reinserted": len(doc6.rootNode().childNodes()) == count + 1,
        "copied": copied.to_dict(),
    }

    try:  # its own failure, not the whole part's
        out["previews"] = _previews(c, cfg, base, canvas)
    except Exception:
        import traceback

        out["previews"] = {"error": traceback.format_exc()}
        c.preview_results = False

    # -- region layers: "region: ..." named, hidden ones left out --------------------------------
    doc_r = k.createDocument(64, 64, "regions", "RGBA", "U8", "", 72.0)
    barn = np.zeros((64, 64, 4), np.uint8)
    barn[8:40, 4:30] = (200, 20, 20, 255)
    barn[8:40, 30:34] = (200, 20, 20, 100)  # a soft edge
    paint(doc_r, barn, "region: a red barn").setOpacity(0)  # marks without showing
    paint(doc_r, np.full((64, 64, 4), 255, np.uint8), "region: a cow").setVisible(False)
    host.refresh(doc_r)
    n = len(c.applied)
    jid = c.generate(Params(**base, seed=6), doc_r)
    ok = _wait_applied(c, n)
    out["regions"] = {"job_id": jid, "ok": ok, "message": c.status.message}
    np.save(cfg["dump"] + "/region-barn.npy", barn)

    # -- cancel a long job -------------------------------------------------------------------------
    doc7 = k.createDocument(64, 64, "cancel", "RGBA", "U8", "", 72.0)
    before = _names(doc7)
    jid = c.generate(Params(**base | {"steps": 400}, seed=9), doc7)
    progressed = dwtest.pump(c, lambda: c.status.step > 0 and c.status.preview is not None, 60)
    preview_shape = list(c.status.preview.shape) if c.status.preview is not None else None
    c.cancel()
    cancelled = dwtest.pump(c, lambda: not c.busy, 60)
    out["cancel"] = {
        "job_id": jid,
        "progressed": progressed,
        "cancelled": cancelled,
        "preview_shape": preview_shape,
        "message": c.status.message,
        "unchanged": _names(doc7) == before,
    }

    # -- upscale the canvas: the document is scaled, the result is a new layer over it -----------
    from dreamwire_krita.logic.upscale import UpscaleChoice

    from dreamwire.shared.refine_upscaler import upscaler_choices

    doc9 = k.createDocument(50, 40, "upscale", "RGBA", "U8", "", 72.0)
    paint(doc9, canvas[:40, :50].copy())
    before = _names(doc9)
    n = len(c.applied)
    choice = UpscaleChoice(factor=1.5, upscaler="Lanczos", refine=True, strength=0.3)
    jid = c.upscale(Params(**base | {"steps": 4}, seed=21), choice, doc9)
    ok = _wait_applied(c, n)
    layer = doc9.rootNode().childNodes()[-1].childNodes()[0] if ok else None
    out["upscale"] = {
        "job_id": jid,
        "ok": ok,
        "message": c.status.message,
        "doc_size": [doc9.width(), doc9.height()],
        "bounds": _bounds(layer) if layer else None,
        "name": layer.name() if layer else "",
        "kept_layers": _names(doc9)[: len(before)] == before,
        "pixels_match_result": bool(
            layer is not None
            and np.array_equal(
                host.pixels.bgra_to_rgba(layer.pixelData(0, 0, 75, 60), 75, 60),
                c.history.entries[0].image,
            )
        ),
        "upscalers": upscaler_choices(c.welcome),
    }

    # -- the X/Y/Z plot, and the model list after a merge ----------------------------------
    import dw_xyz

    t0 = time.monotonic()
    out["xyz"] = dw_xyz.check_xyz(c, base)
    t1 = time.monotonic()
    out["models_refresh"] = dw_xyz.check_models_refresh(c, cfg)
    t2 = time.monotonic()
    out["attention_maps"] = dw_xyz.check_attention_maps(c, base)
    out["a1111_tools_seconds"] = [t1 - t0, t2 - t1, time.monotonic() - t2]

    # -- a Flux model in the docker (its own connection to the same backend) ----------------
    import dw_flux

    out["flux"] = dw_flux.check(cfg)

    # -- the backend dies mid-job ---------------------------------------------------------------------
    doc8 = k.createDocument(64, 64, "dies", "RGBA", "U8", "", 72.0)
    paint(doc8, canvas[:64, :64].copy())
    before = _names(doc8)
    pix_before = host.read_visible(doc8, Rect(0, 0, 64, 64))
    jid = c.refine(Params(**base | {"steps": 400}, seed=9, strength=1.0), doc8)
    progressed = dwtest.pump(c, lambda: c.status.step > 0, 60)
    os.kill(cfg["backend_pid"], signal.SIGKILL)
    t0 = time.monotonic()
    noticed = dwtest.pump(c, lambda: c.status.state == "lost", 30)
    out["dies"] = {
        "job_id": jid,
        "progressed": progressed,
        "noticed": noticed,
        "seconds": time.monotonic() - t0,
        "message": c.status.message,
        "level": c.status.level,
        "unchanged": _names(doc8) == before
        and bool(np.array_equal(host.read_visible(doc8, Rect(0, 0, 64, 64)), pix_before)),
    }
    c.cancel()  # give up on it: no backend to confirm
    out["dies"]["after_cancel"] = [c.busy, c.status.message]
    c.shutdown()
    return out
