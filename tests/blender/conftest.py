"""Blender add-on tests: the repository root goes on sys.path so `blender_addon.core`
imports as plain Python (its package __init__ does not import bpy)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
