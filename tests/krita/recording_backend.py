"""`dreamwire serve`, plus a copy of the arrays each job brought, for the Krita tests.

The real server and engine run unchanged in their own process; the engine is wrapped so
that before each job runs, its init image, mask and control images are saved as .npy under
RECORD/<job_id>/, and its other fields as job.json. That is what arrived at the backend after the wire, which is what the
tests compare with the layers Krita sent.

    python recording_backend.py RECORD --models ROOT --bind tcp://127.0.0.1:0 --out OUT
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import numpy as np

from dreamwire.backend.cli.serve import READY_PREFIX, build_backend
from dreamwire.backend.server.server import Server, ServerConfig


class RecordingEngine:
    def __init__(self, engine, folder: Path):
        self.engine = engine
        self.folder = folder

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, job, *args, **kwargs):
        d = self.folder / job.job_id
        d.mkdir(parents=True, exist_ok=True)
        if job.init_image is not None:
            np.save(d / "init.npy", job.init_image)
        if job.mask is not None:
            np.save(d / "mask.npy", job.mask)
        for i, unit in enumerate(job.controls):
            np.save(d / f"control-{i}-{unit.type}.npy", unit.image)
        for i, region in enumerate(job.regions):
            np.save(d / f"region-{i}.npy", region.mask)
        (d / "size.txt").write_text(f"{job.width} {job.height} {job.outpaint}")
        (d / "job.json").write_text(json.dumps(job.to_wire()[0]))  # arrays as {"$array": i}
        return self.engine.run(job, *args, **kwargs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("record", type=Path)
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--bind", default="tcp://127.0.0.1:0")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    engine, store = build_backend(args.models, args.out, "cpu", None)
    server = Server(
        RecordingEngine(engine, args.record),
        store.save,
        store.load,
        # The roots watched as `dreamwire serve` watches them: a merge is pushed (models_changed).
        ServerConfig(bind=args.bind, watch_roots=list(args.models), watch_interval_s=2.0),
    )
    address = server.bind()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    print(READY_PREFIX + address, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
