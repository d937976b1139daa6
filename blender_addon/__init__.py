"""Dreamwire for Blender: generate textures, project them onto meshes from one or many
cameras, and render animations, with Stable Diffusion running in a separate backend.

Nothing here imports bpy at module level, so `blender_addon.core` (the plain-Python logic)
can be imported and tested outside Blender.
"""

from __future__ import annotations

_modules = []


def register() -> None:
    from . import connection, operators, prefs, props, ui

    _modules[:] = [prefs, props, operators, ui, connection]
    for m in _modules:
        m.register()


def unregister() -> None:
    for m in reversed(_modules):
        m.unregister()
    _modules.clear()
