"""Dreamwire for Krita: a docker that sends jobs to a Dreamwire backend over ZeroMQ.

Importing this package inside Krita registers the docker; imported elsewhere (the test
suite imports `dreamwire_krita.logic`), it does nothing but make the vendored packages
importable.
"""

from __future__ import annotations

from . import vendor_path

vendor_path.install()

try:
    from krita import Krita
except ImportError:  # plain Python: only the logic package is of use
    Krita = None

if Krita is not None and Krita.instance() is not None:
    from .plugin import register

    register()
