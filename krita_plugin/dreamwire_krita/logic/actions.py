"""Krita actions for the docker's main commands, so artists can bind keys to them
(Settings > Configure Krita > Keyboard Shortcuts; they are listed under Scripts)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .workspaces import Workspace


class Command(Enum):
    GENERATE = "generate"
    CANCEL = "cancel"
    APPLY = "apply"
    TOGGLE_LIVE = "toggle_live"


@dataclass(frozen=True)
class PluginAction:
    id: str  # Krita's action name: what a shortcut is stored under, so never renamed
    text: str
    command: Command


ACTIONS = (
    PluginAction("dreamwire_generate", "Dreamwire: Generate", Command.GENERATE),
    PluginAction("dreamwire_cancel", "Dreamwire: Cancel", Command.CANCEL),
    PluginAction("dreamwire_apply", "Dreamwire: Apply live preview", Command.APPLY),
    PluginAction("dreamwire_toggle_live", "Dreamwire: Toggle Live", Command.TOGGLE_LIVE),
)
MENU = "tools/scripts"


def generate_action(workspace: Workspace) -> str:
    """What Generate does in `workspace`: the Upscale workspace's main button upscales;
    elsewhere it generates (Live's own button is Toggle Live)."""
    return "upscale" if workspace is Workspace.UPSCALE else "generate"


def live_workspace_for(command: Command, current: Workspace) -> Workspace:
    """Toggle Live shows the Live workspace, where its controls are; the other commands
    leave the workspace as it is."""
    return Workspace.LIVE if command is Command.TOGGLE_LIVE else current
