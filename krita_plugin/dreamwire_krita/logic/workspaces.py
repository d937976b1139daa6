"""The docker's workspaces (Krita AI Diffusion's compact layout): one task at a time.

Generate (with refine, inpaint and edit by selection and strength), Upscale and Live each
show only their own controls under a shared prompt and model, so the docker stays short
enough to sit beside the Layers docker; status, progress and Cancel stay visible in every
workspace. The Qt side (docker.py) only shows the page this module names.
"""

from __future__ import annotations

from enum import Enum

# The docker must fit a 1920x1080 screen's work area beside the Layers docker: 1080 less a
# desktop panel (~40 px), Krita's title bar, menu, tool bar and status bar (~150 px) and a
# Layers docker kept usable (~250 px). At 1366x768 a scroll area takes up what is left.
SCREEN_1080_BUDGET = 1080 - 40 - 150 - 250
# The smallest screen the docker must still work on, whole window included.
SMALL_SCREEN = (1366, 768)


class Workspace(Enum):
    GENERATE = "generate"
    UPSCALE = "upscale"
    LIVE = "live"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def tip(self) -> str:
        return _TIPS[self]


_TIPS = {
    Workspace.GENERATE: "Generate, refine, inpaint or edit: the selection says where",
    Workspace.UPSCALE: "Upscale the whole canvas, refined tile by tile",
    Workspace.LIVE: "A quick refine of the canvas after every pause in your painting",
}

DEFAULT = Workspace.GENERATE


def from_setting(text: str) -> Workspace:
    """The workspace saved in Krita's settings; an unknown or empty value is Generate."""
    try:
        return Workspace(text.strip().lower())
    except ValueError:
        return DEFAULT


def live_stays_on(leaving: Workspace, entering: Workspace) -> bool:
    """Live runs only in its own workspace: leaving it switches Live off, so no preview
    layer keeps changing while its controls are out of sight."""
    return not (leaving is Workspace.LIVE and entering is not Workspace.LIVE)
