"""Build the installable zip for Krita's Tools > Scripts > Import Python Plugin from File.

    python krita_plugin/build.py --out dist/ [--pyzmq-wheel pyzmq-...-cp310-win_amd64.whl ...]

The zip holds dreamwire_krita.desktop and the dreamwire_krita/ package, with
dreamwire.shared copied into dreamwire_krita/vendor/ (Krita's Python has no pip). pyzmq
wheels given on the command line are unpacked to vendor/pyzmq/<python>-<platform>/ for
Krita builds whose Python lacks zmq (Windows, macOS); Linux distributions ship it.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGIN = "dreamwire_krita"
SKIP = re.compile(r"(__pycache__|\.pyc$|\.pyo$|~$)")
WHEEL = re.compile(r"^pyzmq-[^-]+-(?P<py>cp\d+)-[^-]+-(?P<plat>[^-]+)\.whl$")


def version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return m.group(1) if m else "0"


def _add_dir(zf: zipfile.ZipFile, name: str) -> None:
    # Krita's importer finds the plugin by its folder entry ("dreamwire_krita/"), so
    # folders get entries of their own, as zip tools write them.
    if name not in zf.namelist():
        zf.writestr(zipfile.ZipInfo(name), b"")


def _add_tree(zf: zipfile.ZipFile, src: Path, dest: str) -> None:
    _add_dir(zf, f"{dest}/")
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if SKIP.search(rel):
            continue
        if path.is_dir():
            _add_dir(zf, f"{dest}/{rel}/")
        elif path.is_file():
            zf.write(path, f"{dest}/{rel}")


def build(out_dir: Path, wheels: list[Path] = ()) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"dreamwire-krita-{version()}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(HERE / f"{PLUGIN}.desktop", f"{PLUGIN}.desktop")
        _add_tree(zf, HERE / PLUGIN, PLUGIN)
        vendor = f"{PLUGIN}/vendor/dreamwire"
        _add_dir(zf, f"{PLUGIN}/vendor/")
        _add_dir(zf, f"{vendor}/")
        zf.writestr(f"{vendor}/__init__.py", '"""Vendored by the Krita plugin build."""\n')
        _add_tree(zf, REPO / "shared", f"{vendor}/shared")
        for wheel in wheels:
            m = WHEEL.match(wheel.name)
            if not m:
                raise SystemExit(f"not a pyzmq wheel name: {wheel.name}")
            dest = f"{PLUGIN}/vendor/pyzmq/{m['py']}-{m['plat']}"
            with zipfile.ZipFile(wheel) as wz:
                for name in wz.namelist():
                    if not name.endswith("/") and ".dist-info/" not in name:
                        zf.writestr(f"{dest}/{name}", wz.read(name))
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "dist")
    ap.add_argument("--pyzmq-wheel", type=Path, action="append", default=[])
    args = ap.parse_args(argv)
    print(build(args.out, args.pyzmq_wheel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
