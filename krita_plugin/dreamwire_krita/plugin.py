"""Registration with Krita: the docker factory."""

from __future__ import annotations

from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

DOCKER_ID = "dreamwire_docker"
_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    from .docker import DreamwireDocker

    Krita.instance().addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, DreamwireDocker)
    )
    _registered = True
