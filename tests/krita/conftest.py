"""Krita plugin tests: pure logic with the venv's Python, real Krita through kritarun.py."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The plugin's package lives beside the project, not inside the dreamwire import root.
if str(REPO / "krita_plugin") not in sys.path:
    sys.path.insert(0, str(REPO / "krita_plugin"))
# `tests.support` (the backend process helper) needs the repository root.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
