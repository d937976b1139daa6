"""CurveZMQ for remote use: key files, the loopback rule and the list of allowed clients."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from dreamwire.shared.errors import DreamwireError, ErrorCode

SERVER_KEY_NAME = "server"


def is_loopback_bind(address: str) -> bool:
    """True for addresses only this machine can reach (ipc, loopback TCP)."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", "0.0.0.0" style wildcards, interface names, host names


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """NAME.key (public, to hand out) and NAME.key_secret (private, mode 600) in DIR, in the
    certificate format zmq.auth.load_certificate reads."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    pub_path = directory / f"{name}.key"
    sec_path = directory / f"{name}.key_secret"
    if pub_path.exists() or sec_path.exists():
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"{pub_path} already exists; not overwriting a key"
        )
    head = f"#   dreamwire CurveZMQ key '{name}', created {stamp}\n"
    pub_path.write_text(
        f'{head}#   public: share this file\nmetadata\ncurve\n    public-key = "{public.decode()}"\n'
    )
    fd = os.open(sec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            f"{head}#   SECRET: never share this file\nmetadata\ncurve\n"
            f'    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n'
        )
    return pub_path, sec_path


def load_server_keys(keys_dir: Path) -> tuple[bytes, bytes]:
    path = keys_dir / f"{SERVER_KEY_NAME}.key_secret"
    if not path.is_file():
        raise DreamwireError(
            ErrorCode.UNAUTHORIZED, f"{path} not found; create it with `dreamwire keys {keys_dir}`"
        )
    public, secret = zmq.auth.load_certificate(str(path))
    if not secret:
        raise DreamwireError(ErrorCode.UNAUTHORIZED, f"{path} holds no secret key")
    return public, secret


def load_client_keys(paths: list[Path]) -> set[bytes]:
    """Public keys from key files, or from every *.key file in a directory."""
    keys: set[bytes] = set()
    for p in paths:
        files = sorted(p.glob("*.key")) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise DreamwireError(ErrorCode.UNAUTHORIZED, f"client key file {f} not found")
            public, _ = zmq.auth.load_certificate(str(f))
            keys.add(public)
    return keys


class _AllowList:
    def __init__(self, keys: set[bytes], log):
        self.keys = keys
        self.log = log

    def callback(self, domain: str, key: bytes) -> bool:
        ok = z85.encode(key) in self.keys if len(key) == 32 else key in self.keys
        if not ok:
            self.log.warning("refused a client with an unlisted key")
        return ok


def secure_socket(
    ctx: zmq.Context, sock: zmq.Socket, keys_dir: Path, client_keys: set[bytes], log
) -> ThreadAuthenticator:
    """Turn on CURVE on `sock`; only `client_keys` pass the ZAP handler."""
    public, secret = load_server_keys(keys_dir)
    auth = ThreadAuthenticator(ctx, log=log)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(client_keys, log))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth
