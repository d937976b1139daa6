"""The `dreamwire` console command.

Each module in this package adds one subcommand through `add_parser(subparsers)`, so the
areas (generation, models, server, keys, preprocessors) stay in their own files.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from dreamwire.shared.errors import DreamwireError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamwire", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        add = getattr(module, "add_parser", None)
        if add is not None:
            add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .notices import silence_torchvision_notice

    silence_torchvision_notice()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DreamwireError as exc:
        print(f"dreamwire: error [{exc.code.value}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
