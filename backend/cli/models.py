"""`dreamwire models`: build the tiny test models, list what the library finds, convert
pickled files to .safetensors."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="model library: list, build tiny models, convert")
    sub = p.add_subparsers(dest="models_command", required=True)

    tiny = sub.add_parser("tiny", help="build the tiny random-weight models into DIR")
    tiny.add_argument("dir", type=Path)
    tiny.add_argument(
        "--marigold",
        action="store_true",
        help="also the tiny Marigold folders (models/Marigold) that PBR-map jobs run on",
    )
    tiny.set_defaults(func=run_tiny)

    ls = sub.add_parser("list", help="list the models found under the model roots")
    ls.add_argument("--models", type=Path, nargs="+", default=None, metavar="ROOT")
    ls.add_argument("--kind", default=None, help="only this kind (checkpoint, vae, lora, ...)")
    ls.add_argument("--hash", action="store_true", help="also compute A1111 short hashes (slow)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)

    conv = sub.add_parser(
        "convert", help="convert a pickled .ckpt/.pt/.pth/.bin to .safetensors (weights only)"
    )
    conv.add_argument("path", type=Path)
    conv.add_argument("--out", type=Path, default=None, help="default: beside the input")
    conv.set_defaults(func=run_convert)


def run_tiny(args) -> int:
    from dreamwire.backend.tiny import build_all

    start = time.perf_counter()
    written = build_all(args.dir)
    if args.marigold:
        from dreamwire.backend.tiny import marigold

        written.update(marigold.build(args.dir))
    for name, path in written.items():
        print(f"{name}: {path}")
    print(
        f"built {len(written)} tiny models in {time.perf_counter() - start:.1f}s", file=sys.stderr
    )
    return 0


def run_list(args) -> int:
    from dreamwire.backend.config import model_roots
    from dreamwire.backend.library import ModelLibrary

    roots = model_roots(args.models)
    if not roots:
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            "no model roots: pass --models ROOT or set model_roots in the config file",
        )
    lib = ModelLibrary(roots)
    entries = lib.entries(args.kind)
    rows = []
    for entry in entries:
        row = entry.to_dict()
        if "error" in entry.detail:
            row["error"] = entry.detail["error"]
        if args.hash and entry.format.value != "pickle" and "error" not in entry.detail:
            row["hash"] = lib.short_hash(entry)
        rows.append(row)
    if args.json:
        print(json.dumps({"roots": [str(r) for r in roots], "models": rows}, indent=2))
        return 0
    for row in rows:
        extra = f" [{row['hash']}]" if "hash" in row else ""
        note = f"  ! {row['error']}" if "error" in row else ""
        print(
            f"{row['kind']:<11} {row['name']}{extra}  ({row['format']}, {row['arch'] or '?'}){note}"
        )
    if not rows:
        print("no models found under " + ", ".join(map(str, roots)), file=sys.stderr)
    return 0


def run_convert(args) -> int:
    from safetensors.torch import save_file

    from dreamwire.backend.library.convert import flatten_state_dict
    from dreamwire.backend.library.pickles import safe_torch_load

    data = safe_torch_load(args.path)
    tensors = flatten_state_dict(data)
    out = args.out or args.path.with_suffix(".safetensors")
    if out.exists() and out.resolve() == args.path.resolve():
        raise DreamwireError(ErrorCode.INVALID_JOB, f"refusing to overwrite {args.path}")
    save_file(tensors, str(out))
    print(f"wrote {out} ({len(tensors)} tensors)")
    return 0
