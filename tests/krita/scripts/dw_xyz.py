"""Krita against a real backend: the docker's X/Y/Z plot (a 2x2 grid through the backend's
queue, the grid as a layer, the cells in a group) and the model list refreshed after a
`dreamwire models merge` on the running backend. Called from dw_backend with its
connected controller."""

import json
import os
import subprocess
import time

import dwtest
import numpy as np


def _bounds(node):
    b = node.bounds()
    return [b.x(), b.y(), b.width(), b.height()]


def check_xyz(c, base):
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.logic.params import Params
    from krita import Krita

    doc = Krita.instance().createDocument(64, 64, "xyz", "RGBA", "U8", "", 72.0)
    before = len(doc.rootNode().childNodes())
    n = len(c.applied)
    rows = [("Steps", "1-2"), ("CFG Scale", "3, 5"), ("", "")]
    queued = c.xyz.plot(Params(**base, seed=31), rows, True, doc)
    run = c.xyz.run
    progress = []

    def done():
        if c.status.message.startswith("X/Y/Z plot:") and " of " in c.status.message:
            progress.append([c.status.step, c.status.total])
        return len(c.applied) > n or c.status.level == "error"

    ok = dwtest.pump(c, done, 180) and len(c.applied) > n
    nodes = doc.rootNode().childNodes()[before:]
    out = {
        "queued": queued,
        "ok": ok,
        "message": c.status.message,
        "job_ids": sorted(run.job_ids) if run else [],
        "layers": [[x.name(), x.type(), _bounds(x)] for x in nodes],
        "progress_totals": sorted({t for _, t in progress}),
    }
    if not ok or len(nodes) != 2:
        return out
    grid_layer, group = nodes
    w, h = run.grid.size
    grid = host.pixels.bgra_to_rgba(grid_layer.pixelData(0, 0, w, h), w, h)
    cells = group.childNodes()
    out["cells"] = [x.name() for x in cells]
    matches = []
    for i, cell in enumerate(run.cells):
        r = run.grid.cell_rect(cell.ix, cell.iy, cell.iz)
        mine = host.pixels.bgra_to_rgba(cells[i].pixelData(0, 0, 64, 64), 64, 64)
        matches.append(bool(np.array_equal(grid[r.y : r.bottom, r.x : r.right], mine)))
    out["cells_match_grid"] = matches
    # Qt drew the labels: dark text in the white bands above and to the left.
    out["label_ink"] = [
        int((grid[: run.grid.top, run.grid.left :, :3] < 128).any(axis=2).sum()),
        int((grid[run.grid.top :, : run.grid.left, :3] < 128).any(axis=2).sum()),
    ]
    out["grid_size"] = [w, h]
    out["cells_differ"] = len({m.tobytes() for m in run.images.values()}) == 4
    # A bad axis value is refused by name before anything is queued.
    out["refused"] = [c.xyz.plot(Params(**base), [("Steps", "x-y")], False, doc), c.status.message]
    return out


def check_models_refresh(c, cfg):
    """`dreamwire models merge` writes a checkpoint into the running backend's folder; the
    docker lists it, and forgets it once it is gone, with no Refresh pressed: the backend's
    watch of its folders pushes models_changed."""
    name = "dw-krita-merged"
    had = name in c.welcome.models
    t0 = time.monotonic()
    merged = subprocess.run(
        [cfg["python"], "-m", "dreamwire.backend", "models", "merge", "--models", cfg["models"]]
        + ["--primary", "tiny-sd1", "--secondary", "tiny-sd1", "--name", name, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = {"had": had, "merge_rc": merged.returncode, "merge_err": merged.stderr[-2000:]}
    seen_version = c.welcome_version

    def listed(want):
        def check():
            return c.welcome_version != seen_version and (name in c.welcome.models) == want

        return check

    out["listed"] = dwtest.pump(c, listed(True), 30)
    out["family"] = c.welcome.model_families.get(name, "")
    out["seconds"] = time.monotonic() - t0
    if merged.returncode == 0:  # the session's other tests see the folder as it was
        os.remove(json.loads(merged.stdout)["path"])
    seen_version = c.welcome_version
    out["forgotten"] = dwtest.pump(c, listed(False), 30)
    return out


def check_attention_maps(c, base):
    """Generate with the docker's Attention maps on: the image's group holds a group of
    heat-map overlays named by word."""
    from dreamwire_krita.logic.params import Params
    from krita import Krita

    doc = Krita.instance().createDocument(64, 64, "daam", "RGBA", "U8", "", 72.0)
    n = len(c.applied)
    c.generate(Params(**base, seed=41, attention_maps=True, two_pass=False), doc)
    ok = dwtest.pump(c, lambda: len(c.applied) > n or c.status.level == "error", 120)
    out = {"ok": ok and len(c.applied) > n, "message": c.status.message}
    if not out["ok"]:
        return out
    group = doc.rootNode().childNodes()[-1]
    maps = [x for x in group.childNodes() if x.type() == "grouplayer"]
    out["groups"] = [x.name() for x in maps]
    out["words"] = [x.name() for x in maps[0].childNodes()] if maps else []
    out["visible"] = [x.visible() for x in maps[0].childNodes()] if maps else []
    out["bounds"] = [_bounds(x) for x in maps[0].childNodes()] if maps else []
    out["sent"] = c.last_job.attention_maps
    return out
