"""Krita against a real backend: "Train LoRA from these layers" (two paint layers, no
selection, so each visible top-level paint layer is a picture) trains 2 steps on the tiny
SD1; the result names the LoRA and the docker's lists, asked again, hold it. Called from
dw_backend with its connected controller."""

import time
from pathlib import Path

import dwtest
import numpy as np


def check(c, base, models):
    from dreamwire_krita import krita_host as host
    from dreamwire_krita.logic import train_lora as tl
    from dreamwire_krita.logic.geometry import Rect
    from dreamwire_krita.logic.library import names
    from dreamwire_krita.logic.params import Params
    from krita import Krita

    doc = Krita.instance().createDocument(64, 64, "train", "RGBA", "U8", "", 72.0)
    for node in doc.rootNode().childNodes():  # a new document's Background layer
        node.remove()
    rng = np.random.default_rng(23)
    for name in ("red_coat", "blue hat"):
        rgba = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        rgba[..., 3] = 255
        host.add_result_layer(doc, doc.rootNode(), name, rgba, Rect(0, 0, 64, 64), None)
    host.refresh(doc)
    lora = "dw-krita-trained"
    out = {"listed_before": lora in names(c.welcome.loras)}
    # One layer only (hidden the other): refused before anything is sent.
    doc.rootNode().childNodes()[-1].setVisible(False)
    out["refused"] = [c.train.train(tl.TrainRequest(lora, "dwchar", 2), Params(**base), doc)]
    out["refused"].append(c.status.message)
    doc.rootNode().childNodes()[-1].setVisible(True)

    t0 = time.monotonic()
    progress = []
    seen_version = c.welcome_version

    def done():
        if c.status.message.startswith("Training: step"):
            progress.append(c.status.message)
        return c.status.message.startswith(("Trained LoRA", "Training stopped"))

    req = tl.TrainRequest(lora, "dwchar", 2, rank=2)
    jid = c.train.train(req, Params(**base, seed=3), doc)
    out["job_id"] = jid
    out["ok"] = bool(jid) and dwtest.pump(c, done, 120)
    out["message"] = c.status.message
    out["progress"] = sorted(set(progress))
    job = c.last_job
    out["sent"] = {
        "mode": str(job.mode.value if hasattr(job.mode, "value") else job.mode),
        "captions": [p.caption for p in job.train_lora.pictures],
        "shapes": [list(p.image.shape) for p in job.train_lora.pictures],
        "steps": job.train_lora.max_train_steps,
    }
    out["listed"] = dwtest.pump(
        c, lambda: c.welcome_version != seen_version and lora in names(c.welcome.loras), 30
    )
    out["seconds"] = round(time.monotonic() - t0, 1)
    written = sorted(Path(models).rglob(f"{lora}.safetensors"))
    out["files"] = [p.name for p in written]
    for p in written:  # the session's other checks see the library as it was
        p.unlink()
    return out
