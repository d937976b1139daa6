"""Registration with Krita: the docker factory, and the actions artists can bind keys to."""

from __future__ import annotations

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

DOCKER_ID = "dreamwire_docker"
_registered = False


def _docker():
    from .docker import DreamwireDocker

    found = [d for d in Krita.instance().dockers() if isinstance(d, DreamwireDocker)]
    return found[0] if found else None


class DreamwireActions(Extension):
    """Generate, Cancel, Apply and Toggle Live as Krita actions (logic/actions.py)."""

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        from .logic.actions import ACTIONS, MENU

        for spec in ACTIONS:
            action = window.createAction(spec.id, spec.text, MENU)
            action.triggered.connect(lambda _checked=False, c=spec.command: self.run(c))

    @staticmethod
    def run(command) -> None:
        docker = _docker()
        if docker is not None:  # the docker was closed: nothing to act on
            docker.run_command(command)


def register() -> None:
    global _registered
    if _registered:
        return
    from .docker import DreamwireDocker

    app = Krita.instance()
    app.addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, DreamwireDocker)
    )
    app.addExtension(DreamwireActions(app))
    # The local backend the docker started goes with Krita (atexit is the fallback: Krita
    # does not always finalise Python on the way out).
    from .logic.local_backend import stop_all

    app.notifier().applicationClosing.connect(stop_all)
    _registered = True
