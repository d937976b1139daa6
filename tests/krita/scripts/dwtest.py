"""Shared by the scripts Krita runs in the tests: config in, JSON result out."""

import json
import os
import time
import traceback


def config():
    with open(os.environ["DW_TEST_CONFIG"]) as f:
        return json.load(f)


def write(result):
    path = os.environ["DW_TEST_RESULT"]
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, default=repr)
    os.replace(path + ".tmp", path)


def run(fn):
    """Call fn(config) and write its dict, or the traceback, as the result."""
    try:
        result = fn(config())
    except Exception:
        result = {"error": traceback.format_exc()}
    write(result)
    return result


def pump(controller, until, timeout=120.0):
    """Drive the controller as the docker's QTimer would, until until() is true."""
    from PyQt5.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        controller.tick()
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
        if until():
            return True
        time.sleep(0.02)
    return False
