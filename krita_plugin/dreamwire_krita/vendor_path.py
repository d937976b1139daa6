"""Make the packages built into the plugin zip importable (dreamwire.shared, pyzmq).

Krita's embedded Python has no pip, so the zip carries `vendor/` (dreamwire.shared) and,
optionally, unpacked pyzmq wheels under `vendor/pyzmq/<python tag>-<platform tag>/`; the
wheel matching this Python is used only when Krita's Python has no zmq of its own.
"""

from __future__ import annotations

import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR = os.path.join(HERE, "vendor")


def platform_prefixes() -> list[str]:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform == "win32":
        return ["win_amd64"] if arch == "x86_64" else ["win_arm64"]
    if sys.platform == "darwin":
        return [f"macosx_{v}" for v in ("10", "11", "12", "13", "14", "15")]
    return [f"manylinux{v}" for v in ("1", "2010", "2014", "_2")] + ["musllinux"]


def wheel_dir_matches(name: str) -> bool:
    """name is '<python tag>-<platform tag>', e.g. 'cp310-win_amd64'."""
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    tag, _, plat = name.partition("-")
    machine = platform.machine().lower()
    arch_ok = sys.platform in ("win32", "darwin") or any(
        a in plat for a in (machine, {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine))
    )
    return tag == py and arch_ok and any(plat.startswith(p) for p in platform_prefixes())


def install() -> None:
    if os.path.isdir(VENDOR) and VENDOR not in sys.path:
        # First, so the dreamwire.shared that matches this plugin wins over any other copy.
        sys.path.insert(0, VENDOR)
    try:
        import zmq  # noqa: F401
    except ImportError:
        wheels = os.path.join(VENDOR, "pyzmq")
        if os.path.isdir(wheels):
            for name in sorted(os.listdir(wheels)):
                if wheel_dir_matches(name):
                    sys.path.insert(0, os.path.join(wheels, name))
                    break
