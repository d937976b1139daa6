"""`dreamwire keys DIR`: create a CurveZMQ key pair for remote use.

On the backend machine `dreamwire keys DIR` writes DIR/server.key (public: give it to the
artists' machines) and DIR/server.key_secret (stays here; `serve --keys DIR`). On each
artist's machine `dreamwire keys DIR --name NAME` writes NAME.key, which the backend lists
with `--allow-client-key`, and NAME.key_secret, which only that client uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("keys", help="create a CurveZMQ key pair for remote use")
    p.add_argument("dir", type=Path, help="folder to write the key files into")
    p.add_argument("--name", default="server", help="key name: 'server' (default) or a client name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreamwire.backend.server.auth import write_key_pair

    public, secret = write_key_pair(args.dir, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0
