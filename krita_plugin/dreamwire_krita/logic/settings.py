"""Plugin settings, stored through Krita's own settings (kritarc) by the host adapter."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields

GROUP = "dreamwire"
# `dreamwire serve`'s default --bind (backend/cli/serve.py), so the two meet untouched.
DEFAULT_ADDRESS = "tcp://127.0.0.1:5790"


@dataclass
class Settings:
    address: str = DEFAULT_ADDRESS
    server_key: str = (
        ""  # the remote backend's CurveZMQ public key (Z85 or key file); "" = plain TCP
    )
    client_key: str = ""  # this client's CurveZMQ secret key (Z85 or key file) for that backend
    backend_command: str = ""  # starts a local backend when the address is not answering
    params: str = ""  # last docker parameters, JSON
    # Which family the docker's sampling values are for, and those last used with others
    # (shared.family_presets.FamilyPresets, JSON).
    family_presets: str = ""
    workspace: str = "generate"  # the docker's workspace (logic/workspaces.py)
    masked_content: str = ""  # each workspace's masked content (logic/masked_content.py)

    def problems(self) -> list[str]:
        out = []
        bad = address_problem(self.address)
        if bad:
            out.append(bad)
        if bool(self.server_key) != bool(self.client_key):
            out.append("A remote backend needs both its public key and your secret key")
        for name in ("server_key", "client_key"):
            key = getattr(self, name)
            if key and len(key) != 40 and not os.path.isfile(os.path.expanduser(key)):
                out.append(f"{name.replace('_', ' ')} must be a 40-character Z85 key or a key file")
        return out

    def is_local(self) -> bool:
        host = self.address.split("://", 1)[-1].rsplit(":", 1)[0]
        return self.address.startswith("ipc://") or host in ("127.0.0.1", "localhost", "[::1]")


def address_problem(address: str) -> str | None:
    """Why `address` is not one a ZeroMQ client can connect to, or None: checked before
    the settings dialog closes, so a typo is caught there rather than as "Not connected"."""
    a = address.strip()
    if a != address or not a:
        return "The backend address is empty or has spaces around it"
    if a.startswith("ipc://"):
        return None if len(a) > len("ipc://") else "An ipc:// address needs a path after it"
    if not a.startswith("tcp://"):
        return "The backend address must start with tcp:// or ipc://, e.g. " + DEFAULT_ADDRESS
    host, sep, port = a[len("tcp://") :].rpartition(":")
    if not sep or not host:
        return f"The backend address needs a host and a port, e.g. {DEFAULT_ADDRESS}"
    if host == "*":
        return "tcp://*:… is where a backend listens; connect to its host, e.g. 127.0.0.1"
    if " " in host or "/" in host:
        return f"{host!r} is not a host name or IP address"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"The port must be a number from 1 to 65535, not {port!r}"
    return None


def load(read: Callable[[str, str, str], str]) -> Settings:
    """read(group, name, default) -> str, i.e. Krita.instance().readSetting."""
    out = Settings()
    for f in fields(Settings):
        setattr(out, f.name, str(read(GROUP, f.name, getattr(out, f.name))))
    return out


def save(s: Settings, write: Callable[[str, str, str], None]) -> None:
    """write(group, name, value), i.e. Krita.instance().writeSetting."""
    for f in fields(Settings):
        write(GROUP, f.name, str(getattr(s, f.name)))
