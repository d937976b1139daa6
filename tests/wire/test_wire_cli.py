"""`dreamwire generate --server` runs the same job as in-process, through a backend."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image


def generate(*args: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamwire.backend",
            "generate",
            "--prompt",
            "a red fox",
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
            "--sampler",
            "Euler",
            "--seed",
            "123",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_generate_through_the_server_equals_in_process(backend, tiny_models, tmp_path):
    remote = generate("--server", backend.address, "--out", str(tmp_path / "remote"))
    local = generate("--models", str(tiny_models), "--out", str(tmp_path / "local"))
    (r,), (loc,) = remote["images"], local["images"]
    assert r["seed"] == loc["seed"] == 123
    assert r["infotext"] == loc["infotext"]
    np.testing.assert_array_equal(
        np.asarray(Image.open(r["path"])), np.asarray(Image.open(loc["path"]))
    )
    # The backend kept its own copy too.
    assert (backend.out_dir / "jobs" / remote["job_id"] / "result.json").is_file()
