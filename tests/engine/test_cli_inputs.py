"""The CLI's own input files, hostile ones included, through the real `dreamwire generate`
subprocess (forked from the warm interpreter, tests/support/warm_python.py): a decompression-bomb PNG (a few hundred bytes declaring 100000 x 100000 pixels)
given as --init-image, --mask or a --control image, and a checkpoint whose safetensors
header length field is absurd, each end with a clear error and exit status 2, no traceback
and no gigabytes decoded."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.support import warm_python


def _png(width: int, height: int) -> bytes:
    """A valid-looking PNG that declares width x height RGB pixels but holds a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _generate(tmp_path, models, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["-m", "dreamwire.backend", "generate", "--models", str(models)]
    cmd += ["--prompt", "x", "--width", "64", "--height", "64", "--steps", "1"]
    cmd += ["--out", str(tmp_path / "out"), *args]
    return warm_python.run(cmd, env=env, timeout=300)


def test_decompression_bomb_images_are_refused_clearly(tmp_path, tiny_models):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(100_000, 100_000))
    # Under Pillow's own bomb limit (89 M pixels), where it would decode 243 MB for nothing.
    big = tmp_path / "big.png"
    big.write_bytes(_png(9000, 9000))
    assert bomb.stat().st_size < 1000
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good)
    runs = {
        "init image": ["--init-image", str(bomb)],
        "mask": ["--init-image", str(good), "--mask", str(big)],
        "control": ["--init-image", str(good), "--control", "depth", str(bomb)],
    }
    for what, argv in runs.items():
        proc = _generate(tmp_path, tiny_models, *argv)
        assert proc.returncode == 2, (what, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, what
        assert "[invalid_size]" in proc.stderr, (what, proc.stderr)
        # Pillow itself refuses 100000 x 100000 on open, and names its pixel count.
        size = "9000x9000" if what == "mask" else "10000000000 pixels"
        assert size in proc.stderr and "8192x8192" in proc.stderr, (what, proc.stderr)


def test_a_checkpoint_with_an_absurd_header_length_says_so(tmp_path, tiny_models):
    root = tmp_path / "models"
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "huge-header.safetensors").write_bytes(struct.pack("<Q", 2**63 + 5) + b"{}" * 64)
    proc = _generate(tmp_path, root, "--model", "huge-header")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "[model_corrupt]" in proc.stderr, proc.stderr
    assert "huge-header.safetensors" in proc.stderr and "header length" in proc.stderr
    assert str(2**63 + 5) in proc.stderr


def test_a_local_run_takes_a_checkpoint_by_its_path(tmp_path, tiny_models, monkeypatch):
    """`--model /path/file.safetensors` works on the local CLI (its file offered as a model
    of its own root), named by its stem in the result and the infotext."""
    import contextlib
    import io
    import json
    import shutil

    from dreamwire.backend.cli import main

    monkeypatch.setenv("DREAMWIRE_CACHE", str(tmp_path / "cache"))
    elsewhere = tmp_path / "downloads" / "my model.safetensors"
    elsewhere.parent.mkdir()
    shutil.copy(tiny_models / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", elsewhere)
    buf = io.StringIO()
    argv = ["generate", "--model", str(elsewhere), "--prompt", "a fox", "--steps", "1",
            "--width", "64", "--height", "64", "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    record = json.loads(buf.getvalue())
    assert record["model"] == "my model"
    assert "Model: my model" in record["images"][0]["infotext"]


def test_transformers_torchvision_notice_is_silenced(tmp_path):
    # Forked from the warm interpreter (it imported transformers but never resolved an image
    # processor, so each fork prints the notice afresh): two cold interpreters took ~22 s.
    script = tmp_path / "notice.py"
    script.write_text(
        "import sys\n"
        "import transformers\n"
        # transformers warns once per process, when the name is first resolved.
        "print('resolved' if 'CLIPImageProcessor' in vars(transformers) else 'fresh')\n"
        "if sys.argv[1] == 'quiet':\n"
        "    from dreamwire.backend.cli.notices import silence_torchvision_notice\n"
        "    silence_torchvision_notice()\n"
        "from transformers import CLIPImageProcessor\n"
    )
    runs = {}
    for mode in ("loud", "quiet"):
        done = warm_python.run([str(script), mode], timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "fresh", "the warm interpreter resolved it already"
        runs[mode] = done.stderr
    if "requires torchvision" not in runs["loud"]:
        pytest.skip("this transformers prints no torchvision notice")
    assert "requires torchvision" not in runs["quiet"]
