"""Add-on preferences: where the backend is, its keys, and an optional local backend."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

ADDON_ID = __package__


class DREAMWIRE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    address: StringProperty(
        name="Backend address",
        default="tcp://127.0.0.1:5790",
        description="ZeroMQ address of the Dreamwire backend (dreamwire serve --bind ...)",
    )
    server_public_key: StringProperty(
        name="Server public key",
        default="",
        description="CurveZMQ public key of a remote backend (Z85 text or key file); empty for local use",
    )
    client_key_file: StringProperty(
        name="Client key file",
        default="",
        subtype="FILE_PATH",
        description="This client's secret key file (from 'dreamwire keys'), listed on the backend",
    )
    backend_command: StringProperty(
        name="Backend command",
        default="",
        subtype="FILE_PATH",
        description="Path of 'dreamwire' in the backend's Python environment",
    )
    backend_models: StringProperty(
        name="Model folders",
        default="",
        description="Model folders for the local backend, separated by ';'",
    )
    backend_out: StringProperty(name="Backend output", default="", subtype="DIR_PATH")
    backend_args: StringProperty(name="Extra arguments", default="")
    timeout: IntProperty(name="Connect timeout (s)", default=10, min=1, max=600)

    def draw(self, context):
        from . import connection
        from .ui import draw_error_lines

        layout = self.layout
        col = layout.column()
        col.prop(self, "address")
        col.prop(self, "server_public_key")
        col.prop(self, "client_key_file")
        col.prop(self, "timeout")
        box = layout.box()
        box.label(text="Local backend")
        box.prop(self, "backend_command")
        box.prop(self, "backend_models")
        box.prop(self, "backend_out")
        box.prop(self, "backend_args")
        row = box.row()
        if connection.local_backend_alive():
            row.operator("dreamwire.stop_backend", icon="CANCEL")
        else:
            row.operator("dreamwire.start_backend", icon="PLAY")
        row.operator("dreamwire.show_backend_log", icon="TEXT")
        draw_error_lines(box, connection.LOCAL.failure_text)


def get(context=None) -> DREAMWIRE_AP_preferences | None:
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def register() -> None:
    bpy.utils.register_class(DREAMWIRE_AP_preferences)


def unregister() -> None:
    bpy.utils.unregister_class(DREAMWIRE_AP_preferences)
