"""Run a real-Blender probe script in a fresh process (bpy loads one Blender per process)
and read back what it wrote: OUT/<name>.json (with "ok", or a "traceback") and
OUT/<name>.npz."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def run_probe(script: Path, out: Path, name: str, timeout: float = 300) -> tuple[dict, dict]:
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=timeout
    )
    report = out / f"{name}.json"
    assert report.exists(), f"probe wrote nothing:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(report.read_text())
    assert results.get("ok"), results.get("traceback")
    return results, dict(np.load(out / f"{name}.npz"))
