"""The docker with a Flux model against a real backend (dw_backend.py runs it on its backend,
whose roots hold the tiny Flux.1 dev beside the SD models): picking the model takes Flux's
settings from the welcome, a Flux job lands as a layer with Forge's infotext, and what Flux
cannot run is greyed out and refused before anything is sent."""

import dwtest
import numpy as np


def main(*_):
    dwtest.run(check)


def _panel(d):
    return [
        d.steps.value(),
        round(d.cfg.value(), 4),
        d.sampler.currentText(),
        round(d.distilled_cfg.value(), 4),
        not d.distilled_cfg.isHidden(),
    ]


def _selection(x, y, w, h):
    from krita import Selection

    sel = Selection()
    sel.select(x, y, w, h, 255)
    return sel


def check(cfg):
    import dreamwire_krita  # noqa: F401
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.docker import DreamwireDocker
    from dreamwire_krita.logic.geometry import Rect
    from krita import Krita

    out = {}
    d = DreamwireDocker()
    c = d.controller
    # Results land at once, as they did before previews: this part checks what Flux makes
    # and where it lands (the previews are dw_backend's and the docker test's).
    c.results.previews_on = False
    c.settings.address = cfg["address"]  # kritarunner does not read the profile's kritarc
    c.connect()
    out["connected"] = dwtest.pump(c, lambda: d._welcome_seen is not None, 60)
    out["sd"] = _panel(d)  # the default model, tiny-sd1: SD's values, no Distilled CFG
    d.model.setCurrentText("tiny-flux")
    out["switched"] = _panel(d)
    out["greyed"] = {
        "region": [d.add_region_button.isEnabled(), d.add_region_button.toolTip()],
        "refine": [d.upscale_refine.isEnabled(), d.upscale_choice().refine],
        "controls": sorted({o.why for o in c.control_offers(d.model.currentText())}),
        "edit": [d.edit_button.isEnabled(), d.edit_button.toolTip()],
    }
    d.prompt.setPlainText("a red fox")
    d.steps.setValue(2)
    d.distilled_cfg.setValue(2.5)
    d.seed.setValue(7)
    d.model.setCurrentText("tiny-flux")  # the same family again: the artist's values stay
    out["kept"] = _panel(d)

    doc = Krita.instance().createDocument(64, 64, "flux", "RGBA", "U8", "", 72.0)
    n = len(c.applied)
    c.generate(d.params(), doc)
    ok = dwtest.pump(c, lambda: len(c.applied) > n or c.status.level == "error", 120)
    groups = [x for x in doc.rootNode().childNodes() if x.type() == "grouplayer"]
    layers = groups[-1].childNodes() if groups else []
    out["generated"] = {
        "ok": ok and len(c.applied) > n,
        "message": c.status.message,
        "layers": [(x.name(), x.type()) for x in layers],
        "bounds": [[b.x(), b.y(), b.width(), b.height()] for b in (x.bounds() for x in layers)],
        "job_distilled": c.last_job.distilled_cfg,
        "infotext": c.results.history.entries[-1].infotext if len(c.results.history) else "",
    }

    # A region layer: Flux has no regional prompts; refused here, nothing goes out.
    paint = np.zeros((64, 64, 4), np.uint8)
    paint[:32] = 255
    host.add_result_layer(doc, doc.rootNode(), "region: a cat", paint, Rect(0, 0, 64, 64), None)
    host.refresh(doc)
    out["region"] = {
        "job_id": c.generate(d.params(), doc),
        "message": c.status.message,
        "level": c.status.level,
    }

    # Edit: refused on the plain Flux model in the button's words; on Kontext the active
    # layer's selected part goes out as an edit job and lands as a layer on the selection.
    refused = c.edit(d.params(), doc)
    out["edit_refused"] = [refused, c.status.message]
    d.model.setCurrentText("tiny-flux-kontext")
    out["edit_enabled"] = d.edit_button.isEnabled()
    doc.setActiveNode(layers[0])
    doc.setSelection(_selection(8, 8, 32, 32))
    n = len(c.applied)
    edit_id = c.edit(d.params(), doc)
    ok = dwtest.pump(c, lambda: len(c.applied) > n or c.status.level == "error", 120)
    groups = [x for x in doc.rootNode().childNodes() if x.type() == "grouplayer"]
    edited = groups[-1].childNodes() if groups else []
    out["edited"] = {
        "ok": bool(edit_id) and ok and len(c.applied) > n,
        "job_id": edit_id,
        "message": c.status.message,
        "mode": str(c.last_job.mode),
        "size": [c.last_job.width, c.last_job.height],
        "group": groups[-1].name() if groups else "",
        "bounds": [[b.x(), b.y(), b.width(), b.height()] for b in (x.bounds() for x in edited)],
    }
    from krita import Selection

    doc.setSelection(Selection())
    # An SD1.x name the backend does not list (a saved panel's or a style's; none can be
    # typed in): shown as not on the backend, and back to the SD values.
    d.model_picker.select("dreamshaper_8")
    out["back"] = _panel(d)
    d.timer.stop()
    c.shutdown()
    return out
