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

    def problems(self) -> list[str]:
        out = []
        if not self.address.startswith(("tcp://", "ipc://")):
            out.append("The backend address must start with tcp:// or ipc://")
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
