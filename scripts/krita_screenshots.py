"""Retake the Krita manual's screenshots: real Krita under Xvfb, the docker connected to a
real backend on the tiny models, one picture per workspace plus the whole window.

    .venv/bin/python scripts/krita_screenshots.py [--size 1920x1080]

Writes krita_plugin/dreamwire_krita/manual_images/*.png, which manual.html shows and the
plugin zip ships. It drives the same startup plugin as tests/krita/test_krita_docker.py, so
the pictures show what that test checks; rerun it whenever the docker changes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "krita_plugin" / "dreamwire_krita" / "manual_images"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1920x1080", help="screen size WxH (default 1920x1080)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    # The harness and the backend runner live with the tests that keep them honest.
    sys.path[:0] = [str(REPO), str(REPO / "tests" / "krita")]
    from krita_harness import KRITA, XVFB, build_zip, make_profile, run_gui

    from dreamwire.backend.tiny import build_all
    from tests.support.backend import BackendProcess

    if KRITA is None or XVFB is None:
        print("needs krita and Xvfb (Debian: apt install krita xvfb)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dw-shots-") as tmp:
        root = Path(tmp)
        models = root / "models"
        build_all(models)
        shots = root / "shots"
        shots.mkdir()
        with BackendProcess([models], root / "out") as backend:
            prof = make_profile(
                root / "profile", build_zip(root / "dist"), settings={"address": backend.address}
            )
            result = run_gui(
                prof, {"timeout": 110, "manual": str(shots)}, timeout=220, screen=(width, height)
            )
        if "error" in result:
            print(f"Krita run failed: {result['error']}", file=sys.stderr)
            return 1
        taken = sorted(shots.glob("*.png"))
        if not taken:
            print("Krita wrote no screenshots", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for png in taken:
            shutil.copy(png, args.out / png.name)
            print(args.out / png.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
