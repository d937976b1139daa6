"""The settings' local backend command: the plugin starts the backend and talks to it."""

import dwtest


def main(*_):
    dwtest.run(check)


def check(cfg):
    import dreamwire_krita  # noqa: F401
    from dreamwire_krita.controller import Controller
    from dreamwire_krita.logic.params import Params
    from dreamwire_krita.logic.settings import Settings
    from krita import Krita

    # A command that is not there: its error shows, and later status does not replace it.
    c = Controller(
        settings=Settings(address=cfg["address"], backend_command="dreamwire-not-installed")
    )
    c.connect()
    c.on_state("lost")  # what the client says once nothing answers
    failed = [c.status.label, c.status.message, c.status.level]
    c.shutdown()
    settings = Settings(address=cfg["address"], backend_command=cfg["command"])
    c = Controller(settings=settings)
    c.save_settings(settings)  # through Krita's own settings, as the dialog does
    stored = Krita.instance().readSetting("dreamwire", "backend_command", "")
    c.connect()
    started = c.backend_process is not None
    connected = dwtest.pump(c, lambda: c.session.state == "connected", 150)
    doc = Krita.instance().createDocument(64, 64, "local", "RGBA", "U8", "", 72.0)
    c.generate(Params(prompt="a boat", steps=2, seed=4, model="tiny-sd1"), doc)
    generated = dwtest.pump(c, lambda: bool(c.applied) or c.status.level == "error", 120)
    # The artist closes the document while its job runs: a message, no crash.
    doc2 = Krita.instance().createDocument(64, 64, "closed", "RGBA", "U8", "", 72.0)
    n = len(c.applied)
    c.generate(Params(prompt="a boat", steps=2, seed=5, model="tiny-sd1"), doc2)
    doc2.close()
    dwtest.pump(c, lambda: not c.busy, 60)
    closed = {
        "applied": len(c.applied) - n,
        "message": c.status.message,
        "level": c.status.level,
        "history": len(c.results.history),
    }
    proc = c.backend_process
    c.shutdown()
    try:
        code = proc.wait(30)
    except Exception as exc:
        code = repr(exc)
    return {
        "stored": stored,
        "started": started,
        "connected": connected,
        "generated": generated and bool(c.applied),
        "message": c.status.message,
        "exit": code,
        "closed": closed,
        "failed": failed,
    }
