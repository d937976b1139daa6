"""Build the installable Blender extension zip.

    python blender_addon/build.py --out dist/

The zip holds the add-on, a `dreamwire_shared` wheel (the protocol package
`dreamwire.shared`, pure Python) and pyzmq wheels for Linux, Windows and macOS built for
Blender's Python 3.11, all listed in the manifest's `wheels`, so installing the zip is
the only step on the Blender side. pyzmq wheels are fetched once with `pip download` into
a cache folder and reused; `--offline` refuses to download.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT / "shared"
PYTHON_VERSION = "3.11"
# (pip --platform tags to try, manifest platform names the wheel serves)
PLATFORMS = [
    (["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"], ["linux-x64"]),
    (["win_amd64"], ["windows-x64"]),
    (
        ["macosx_11_0_universal2", "macosx_10_15_universal2", "macosx_11_0_arm64"],
        ["macos-arm64", "macos-x64"],
    ),
]
EXCLUDE_DIRS = {"__pycache__", ".pytest_cache"}
EXCLUDE_FILES = {"build.py"}


def _version() -> str:
    text = (HERE / "blender_manifest.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def _zmq_requirement() -> str:
    try:
        import zmq

        return f"pyzmq=={zmq.__version__}"
    except ImportError:
        return "pyzmq>=25"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_shared_wheel(out_dir: Path, version: str) -> Path:
    """A py3-none-any wheel with `dreamwire/shared/**` (dreamwire stays a namespace package,
    as in the full distribution)."""
    files: dict[str, bytes] = {}
    for path in sorted(SHARED.rglob("*")):
        if path.is_dir() or EXCLUDE_DIRS & set(path.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        files["dreamwire/shared/" + path.relative_to(SHARED).as_posix()] = path.read_bytes()
    bad = [
        n
        for n, d in files.items()
        if n.endswith(".py")
        and re.search(rb"^\s*(import|from)\s+dreamwire\.(backend|catalog)", d, re.M)
    ]
    if bad:
        raise SystemExit(f"dreamwire.shared must not import the backend: {bad}")
    dist = f"dreamwire_shared-{version}.dist-info"
    files[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: dreamwire-shared\nVersion: {version}\n"
        "Summary: Dreamwire protocol and client (bundled in the Blender extension)\n"
        "Requires-Dist: numpy\nRequires-Dist: pyzmq\n"
    ).encode()
    files[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: dreamwire-build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = out_dir / f"dreamwire_shared-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), d, zipfile.ZIP_DEFLATED)
    return out


def fetch_zmq_wheels(cache: Path, offline: bool) -> list[tuple[Path, list[str]]]:
    cache.mkdir(parents=True, exist_ok=True)
    req = _zmq_requirement()
    wanted_version = req.split("==")[1] if "==" in req else None
    found = []
    for tags, platforms in PLATFORMS:

        def cached(tags=tags):
            for whl in sorted(cache.glob("pyzmq-*.whl")):
                if wanted_version and f"-{wanted_version}-" not in whl.name:
                    continue
                if "cp311" in whl.name and any(
                    t.split("_")[0] in whl.name and t.rsplit("_", 1)[-1] in whl.name for t in tags
                ):
                    return whl
            return None

        whl = cached()
        if whl is None and not offline:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--no-deps",
                "--python-version",
                PYTHON_VERSION,
                "--implementation",
                "cp",
                "--dest",
                str(cache),
            ]
            for t in tags:
                cmd += ["--platform", t]
            subprocess.run(cmd + [req], check=True)
            whl = cached()
        if whl is None:
            raise SystemExit(f"no pyzmq wheel for {platforms} in {cache} (run without --offline)")
        found.append((whl, platforms))
    return found


def write_manifest(src: Path, dst: Path, wheels: list[str], platforms: list[str]) -> None:
    text = src.read_text()
    listing = "wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]"
    plats = "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]"
    text = re.sub(r"^wheels\s*=\s*\[[^\]]*\]", lambda m: listing + "\n" + plats, text, flags=re.M)
    dst.write_text(text)


def build(out: Path, cache: Path, offline: bool = False) -> Path:
    version = _version()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dreamwire-ext-") as tmp:
        stage = Path(tmp) / "dreamwire"
        shutil.copytree(
            HERE,
            stage,
            ignore=lambda d, names: [
                n for n in names if n in EXCLUDE_DIRS or n in EXCLUDE_FILES or n.endswith(".pyc")
            ],
        )
        wheel_dir = stage / "wheels"
        wheel_dir.mkdir(exist_ok=True)
        shared = build_shared_wheel(wheel_dir, version)
        names = [shared.name]
        platforms: list[str] = []
        for whl, plats in fetch_zmq_wheels(cache, offline):
            shutil.copy2(whl, wheel_dir / whl.name)
            names.append(whl.name)
            platforms += [p for p in plats if p not in platforms]
        write_manifest(
            HERE / "blender_manifest.toml", stage / "blender_manifest.toml", names, platforms
        )
        target = out / f"dreamwire-{version}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(stage.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(stage).as_posix())
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip")
    ap.add_argument(
        "--wheel-cache",
        default=os.environ.get("DREAMWIRE_WHEEL_CACHE", str(ROOT / "build" / "wheel-cache")),
        help="where downloaded pyzmq wheels are kept and reused",
    )
    ap.add_argument("--offline", action="store_true", help="use cached wheels only")
    args = ap.parse_args(argv)
    target = build(Path(args.out), Path(args.wheel_cache), args.offline)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
