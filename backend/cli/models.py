"""`dreamwire models`: build the tiny test models, list what the library finds, convert
pickled files to .safetensors, merge checkpoints as A1111's Checkpoint Merger does."""

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
        "convert",
        help="convert a checkpoint to .safetensors: fp16/bf16, prune EMA, bake a VAE, one "
        "part alone; pickles through the weights-only loader",
    )
    conv.add_argument("path", type=Path)
    conv.add_argument("--out", type=Path, default=None, help="default: beside the input")
    conv.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    conv.add_argument("--prune", default="disabled", choices=["disabled", "no-ema", "ema-only"])
    conv.add_argument(
        "--only", default=None, choices=["unet", "vae", "text-encoder"], help="one part alone"
    )
    conv.add_argument("--bake-vae", type=Path, default=None, metavar="VAE_FILE")
    conv.add_argument("--json", action="store_true", help="print the result as JSON")
    conv.set_defaults(func=run_convert)

    mg = sub.add_parser(
        "merge", help="merge checkpoints as A1111's Checkpoint Merger does (into A's folder)"
    )
    mg.add_argument("--models", type=Path, nargs="+", default=None, metavar="ROOT")
    mg.add_argument("--primary", required=True, metavar="A")
    mg.add_argument("--secondary", default=None, metavar="B")
    mg.add_argument("--tertiary", default=None, metavar="C")
    mg.add_argument(
        "--method",
        default="Weighted sum",
        choices=["Weighted sum", "Add difference", "No interpolation"],
    )
    mg.add_argument("--multiplier", type=float, default=0.3, metavar="M", help="B's weight")
    mg.add_argument("--fp16", action="store_true", help="save as float16")
    mg.add_argument("--bake-vae", default=None, metavar="VAE", help="a VAE name to bake in")
    mg.add_argument("--discard", default="", metavar="REGEX", help="drop matching keys")
    mg.add_argument("--name", default="", help="file name without extension")
    mg.add_argument("--no-metadata", action="store_true", help="write no merge recipe")
    mg.add_argument("--json", action="store_true", help='print {"path": ...}')
    mg.set_defaults(func=run_merge)


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


def _library(args):
    """The library over --models (or the config file's roots); refused when there are none."""
    from dreamwire.backend.config import model_roots
    from dreamwire.backend.library import ModelLibrary

    roots = model_roots(args.models)
    if not roots:
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            "no model roots: pass --models ROOT or set model_roots in the config file",
        )
    return ModelLibrary(roots)


def run_list(args) -> int:
    from dreamwire.backend.library.sizes import stored_label

    lib = _library(args)
    roots = lib.roots
    entries = lib.entries(args.kind)
    rows = []
    for entry in entries:
        row = entry.to_dict()
        if "error" in entry.detail:
            row["error"] = entry.detail["error"]
        if entry.kind.value == "checkpoint" and (label := stored_label(entry)):
            row["weights"] = label
        if args.hash and entry.format.value != "pickle" and "error" not in entry.detail:
            row["hash"] = lib.short_hash(entry)
        rows.append(row)
    if args.json:
        print(json.dumps({"roots": [str(r) for r in roots], "models": rows}, indent=2))
        return 0
    for row in rows:
        extra = f" [{row['hash']}]" if "hash" in row else ""
        note = f"  stored as {row['weights']}" if "weights" in row else ""
        note += f"  ! {row['error']}" if "error" in row else ""
        print(
            f"{row['kind']:<11} {row['name']}{extra}  ({row['format']}, {row['arch'] or '?'}){note}"
        )
    if not rows:
        print("no models found under " + ", ".join(map(str, roots)), file=sys.stderr)
    return 0


def run_convert(args) -> int:
    from dreamwire.backend.library.model_convert import ConvertRequest, Part, Pruning, convert

    r = convert(
        ConvertRequest(
            path=args.path,
            precision=args.precision,
            pruning=Pruning(args.prune),
            only=Part(args.only) if args.only else None,
            vae=args.bake_vae,
            out=args.out,
        )
    )
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(r.path),
                    "tensors": r.tensors,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                }
            )
        )
    else:
        mib = 2**20
        print(
            f"wrote {r.path} ({r.tensors} tensors): {r.bytes_before / mib:.1f} MiB -> "
            f"{r.bytes_after / mib:.1f} MiB"
        )
    return 0


def run_merge(args) -> int:
    from dreamwire.backend.library.entries import Format, Kind
    from dreamwire.backend.library.merge import Checkpoint, MergeMethod, MergeRequest, merge
    from dreamwire.backend.library.merge_families import check_families

    method = MergeMethod(args.method)
    lib = _library(args)
    names = [args.primary, args.secondary, args.tertiary][: method.models]
    entries = []
    for role, name in zip(("primary", "secondary", "tertiary"), names, strict=False):
        if not name:
            raise DreamwireError(ErrorCode.INVALID_JOB, f"{method.value} needs a {role} model")
        entry = lib.find(Kind.CHECKPOINT, name)
        if entry.format is Format.DIFFUSERS:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"{entry.name} is a diffusers folder; the merger takes single-file checkpoints",
            )
        entries.append(entry)
    check_families(entries)
    vae_path, vae_name = None, "None"
    if args.bake_vae:
        vae = lib.find(Kind.VAE, args.bake_vae)
        vae_path, vae_name = vae.path, vae.filename
    cks = [Checkpoint(e.name, e.path) for e in entries] + [None, None]
    result = merge(
        MergeRequest(
            primary=cks[0],
            secondary=cks[1],
            tertiary=cks[2],
            method=method,
            multiplier=args.multiplier,
            fp16=args.fp16,
            vae=vae_path,
            vae_name=vae_name,
            discard=args.discard,
            custom_name=args.name,
            metadata=not args.no_metadata,
        )
    )
    if args.json:
        print(json.dumps({"path": str(result.path)}))
    else:
        print(f"Checkpoint saved to {result.path}")
    return 0
