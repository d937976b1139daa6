"""The installable zip: what Krita's importer needs, the vendored packages, pyzmq wheels."""

from __future__ import annotations

import ast
import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
from dreamwire_krita import vendor_path
from krita_harness import IMPORTER, build_module, build_zip

build = build_module()


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return build_zip(tmp_path_factory.mktemp("dist"))


def test_zip_holds_desktop_file_package_and_vendored_shared(plugin_zip):
    names = set(zipfile.ZipFile(plugin_zip).namelist())
    assert "dreamwire_krita.desktop" in names
    assert "dreamwire_krita/" in names and "dreamwire_krita/__init__.py" in names
    assert "dreamwire_krita/vendor/dreamwire/shared/client.py" in names
    assert "dreamwire_krita/vendor/dreamwire/shared/imaging/openpose.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Host code never ships the backend.
    assert not [n for n in names if "/backend/" in n or "torch" in n]


def _shared_modules_imported_by(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found |= {n for n in names if n.startswith("dreamwire.shared.")}
    return found


def test_every_shared_module_the_plugin_imports_is_vendored(plugin_zip):
    names = set(zipfile.ZipFile(plugin_zip).namelist())
    imported = _shared_modules_imported_by(Path(vendor_path.HERE))
    assert "dreamwire.shared.local_process" in imported
    for mod in imported:
        path = "dreamwire_krita/vendor/" + mod.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, mod


@pytest.mark.skipif(not IMPORTER.exists(), reason="Krita's plugin importer is not installed")
def test_krita_importer_accepts_the_zip(plugin_zip, tmp_path):
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    imported = mod.PluginImporter(str(plugin_zip), str(tmp_path), lambda p: True).import_all()
    assert [p["name"] for p in imported] == ["dreamwire_krita"]
    assert (tmp_path / "pykrita" / "dreamwire_krita.desktop").exists()
    assert (
        tmp_path / "pykrita" / "dreamwire_krita" / "vendor" / "dreamwire" / "shared" / "job.py"
    ).exists()


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zmq/__init__.py", "MARK = 'vendored'\n")
        zf.writestr("pyzmq-26.0.0.dist-info/METADATA", "Name: pyzmq\n")
    return path


def test_pyzmq_wheels_are_unpacked_per_platform(tmp_path):
    w1 = _wheel(tmp_path / "pyzmq-26.0.0-cp310-cp310-win_amd64.whl")
    w2 = _wheel(tmp_path / "pyzmq-26.0.0-cp311-cp311-macosx_10_15_universal2.whl")
    out = build.build(tmp_path / "dist", [w1, w2])
    names = set(zipfile.ZipFile(out).namelist())
    assert "dreamwire_krita/vendor/pyzmq/cp310-win_amd64/zmq/__init__.py" in names
    assert "dreamwire_krita/vendor/pyzmq/cp311-macosx_10_15_universal2/zmq/__init__.py" in names
    assert not [n for n in names if ".dist-info" in n]
    with pytest.raises(SystemExit):
        build.build(tmp_path / "dist", [_wheel(tmp_path / "numpy-1.0-py3-none-any.whl")])


def test_vendored_wheel_is_picked_for_this_python_only(monkeypatch):
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    monkeypatch.setattr(vendor_path.sys, "platform", "win32")
    monkeypatch.setattr(vendor_path.platform, "machine", lambda: "AMD64")
    assert vendor_path.wheel_dir_matches(f"{py}-win_amd64")
    assert not vendor_path.wheel_dir_matches("cp39-win_amd64")
    assert not vendor_path.wheel_dir_matches(f"{py}-macosx_11_0_arm64")
    monkeypatch.setattr(vendor_path.sys, "platform", "linux")
    monkeypatch.setattr(vendor_path.platform, "machine", lambda: "x86_64")
    assert vendor_path.wheel_dir_matches(f"{py}-manylinux_2_28_x86_64")
    assert not vendor_path.wheel_dir_matches(f"{py}-manylinux_2_28_aarch64")
