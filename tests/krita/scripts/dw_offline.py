"""Checks inside real Krita that need no backend: refusals, colour spaces, layers, masks."""

import dwtest
import numpy as np

SRGB = "sRGB-elle-V2-srgbtrc.icc"


def _doc(k, w, h, model="RGBA", depth="U8", profile=""):
    return k.createDocument(w, h, "dwtest", model, depth, profile, 72.0)


def _paint(doc, rgba, x=0, y=0, name="paint"):
    """A layer holding rgba (8-bit sRGB), converted into the document's colour space."""
    from dreamwire_krita import krita_host as host

    layer, _ = host.add_result_layer(doc, doc.rootNode(), name, rgba, _rect(x, y, rgba), None)
    host.refresh(doc)
    return layer


def _rect(x, y, img):
    from dreamwire_krita.logic.geometry import Rect

    return Rect(x, y, img.shape[1], img.shape[0])


def _layer_names(doc):
    from dreamwire_krita import krita_host as host

    # The global selection is itself a node ("Selection Mask"); it is the test's doing.
    return [n.name() for n in host.iter_nodes(doc.rootNode()) if n.type() != "selectionmask"]


def main(*_):
    dwtest.run(check)


def check(cfg):
    import dreamwire_krita  # noqa: F401 - installs the vendored packages
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.controller import Controller
    from dreamwire_krita.logic import controls as ctl
    from dreamwire_krita.logic.geometry import Rect
    from dreamwire_krita.logic.params import Params
    from dreamwire_krita.logic.settings import Settings
    from krita import Krita, Selection

    import dreamwire.shared

    k = Krita.instance()
    out = {"shared_from": dreamwire.shared.__file__}
    params = Params(prompt="a fox", steps=2, seed=1)

    # -- refusals, with and without a backend ----------------------------------------------
    c = Controller(settings=Settings(address=cfg["dead_address"]))
    out["no_document"] = (c.generate(params), c.status.message)

    doc = _doc(k, 96, 64)
    before = _layer_names(doc)
    empty = Selection()
    doc.setSelection(empty)
    out["empty_selection"] = (c.inpaint(params, doc), c.status.message)
    doc.setSelection(Selection())
    doc2 = _doc(k, 96, 64)
    out["not_connected"] = (c.generate(params, doc2), c.status.message)
    c.connect()
    dwtest.pump(c, lambda: False, timeout=1.0)
    out["backend_down"] = (c.generate(params, doc2), c.status.message, c.session.state)
    out["layers"] = [before, _layer_names(doc), _layer_names(doc2)]
    out["layers_unchanged"] = _layer_names(doc) == before and _layer_names(doc2) == before
    c.shutdown()

    # -- result layers: placement and the selection's mask -----------------------------------
    doc = _doc(k, 96, 64)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 96, 4), dtype=np.uint8)
    base[..., 3] = 255
    _paint(doc, base)
    before = host.read_visible(doc, Rect(0, 0, 96, 64))
    sel = Selection()
    sel.select(20, 10, 40, 30, 255)
    sel.feather(4)
    doc.setSelection(sel)
    srect = host.selection_rect(doc)
    mask = host.read_selection(doc, srect)
    result = np.zeros((srect.h, srect.w, 4), np.uint8)
    result[...] = (255, 0, 0, 255)
    group = host.add_group(doc, "g")
    layer, kind = host.add_result_layer(doc, group, "res", result, srect, mask)
    host.refresh(doc)
    after = host.read_visible(doc, Rect(0, 0, 96, 64))
    full = np.zeros((64, 96), np.uint8)
    full[srect.y : srect.bottom, srect.x : srect.right] = mask
    b = layer.bounds()
    out["mask"] = {
        "kind": kind,
        "selection": [srect.x, srect.y, srect.w, srect.h],
        "layer_bounds": [b.x(), b.y(), b.width(), b.height()],
        "outside_unchanged": bool(np.array_equal(after[full == 0], before[full == 0])),
        "inside_is_result": bool((after[full == 255][:, :3] == (255, 0, 0)).all()),
        "feather_levels": int(len(np.unique(mask))),
        "partial_blends": bool(
            np.all(
                np.abs(
                    after[(full > 0) & (full < 255)][:, 0].astype(int)
                    - (
                        before[(full > 0) & (full < 255)][:, 0].astype(int)
                        * (255 - full[(full > 0) & (full < 255)].astype(int))
                        + 255 * full[(full > 0) & (full < 255)].astype(int)
                    )
                    // 255
                )
                <= 2
            )
        ),
    }

    # -- colour spaces: read for sending, results converted back ----------------------------
    colours = {}
    grad = np.zeros((16, 32, 4), np.uint8)
    grad[..., 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    grad[..., 1] = 128
    grad[..., 2] = np.linspace(255, 0, 16, dtype=np.uint8)[:, None]
    grad[..., 3] = 255
    for model, depth in cfg["spaces"]:
        d = _doc(k, 32, 16, model, depth)
        entry = {"doc": [d.colorModel(), d.colorDepth(), d.colorProfile()]}
        try:
            host.doc_info(d)
        except Exception as exc:
            entry["refused"] = str(exc)
            colours[f"{model}/{depth}"] = entry
            continue
        lay, _ = host.add_result_layer(d, d.rootNode(), "res", grad, Rect(0, 0, 32, 16), None)
        host.refresh(d)
        entry["layer_space"] = [lay.colorModel(), lay.colorDepth()]
        back = host.read_visible(d, Rect(0, 0, 32, 16)).astype(int)
        expect = grad.astype(int)
        entry["max_err"] = int(np.abs(back[..., :3] - expect[..., :3]).max())
        entry["mean_err"] = float(np.abs(back[..., :3] - expect[..., :3]).mean())
        # What Krita itself makes of the same picture converted to this space: results must
        # come back as if the artist had painted them in sRGB and converted the image.
        ref = _doc(k, 32, 16)
        _paint(ref, grad)
        ref.setColorSpace(model, depth, d.colorProfile())
        host.refresh(ref)
        want = host.read_visible(ref, Rect(0, 0, 32, 16)).astype(int)
        entry["max_err_vs_krita"] = int(np.abs(back[..., :3] - want[..., :3]).max())
        entry["grey"] = bool(
            (back[..., 0] == back[..., 1]).all() and (back[..., 1] == back[..., 2]).all()
        )
        ref.close()
        colours[f"{model}/{depth}"] = entry
        d.close()
    out["colours"] = colours

    # -- control marks live in the document ------------------------------------------------
    doc = _doc(k, 64, 64)
    sketch = np.zeros((64, 64, 4), np.uint8)
    sketch[30:34, 8:56, 3] = 255
    node = _paint(doc, sketch, name="sketch")
    c = Controller(settings=Settings())
    c.set_mark(host.node_id(node), ctl.ControlMark("scribble", 0.6, 0.0, 0.8), doc)
    marks = c.marks(doc)
    from dreamwire_krita.logic.regions import plan_generate

    units = c._control_units(doc, plan_generate(host.canvas_rect(doc), None))
    out["controls"] = {
        "marks": {i: vars(m) for i, m in marks.items()},
        "node": host.node_id(node),
        "units": [(u.type, u.weight, u.end, list(u.image.shape)) for u in units],
        "stroke_white": bool((units[0].image[30:34, 8:56] == 255).all()) if units else None,
        "background_black": bool((units[0].image[0:20] == 0).all()) if units else None,
    }
    return out
