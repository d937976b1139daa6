"""`dreamwire preprocess TYPE IMAGE --out FILE`: run one control-image preprocessor."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(subparsers) -> None:
    try:
        from dreamwire.backend.conditioning.preprocess import names
    except ImportError:  # no OpenCV: the command still lists, and fails clearly when run

        def names() -> list[str]:
            return []

    p = subparsers.add_parser(
        "preprocess",
        help="make a ControlNet control image (canny, shuffle, scribble, invert, binary, ...)",
    )
    p.add_argument("type", metavar="TYPE", help="one of: " + ", ".join(names()))
    p.add_argument("image", type=Path, help="input image (PNG, JPEG, ...)")
    p.add_argument("--out", type=Path, required=True, help="where to write the PNG")
    p.add_argument("--low", type=int, default=100, help="canny low threshold")
    p.add_argument("--high", type=int, default=200, help="canny high threshold")
    p.add_argument(
        "--threshold", type=int, default=None, help="binary/threshold/scribble threshold"
    )
    p.add_argument("--seed", type=int, default=0, help="shuffle seed")
    p.add_argument("--factor", type=float, default=1.0, help="tile_resample down-sampling factor")
    p.add_argument(
        "--res",
        type=int,
        default=-1,
        help="detect resolution (A1111's Preprocessor resolution, 64..2048; default 512): the "
        "image is resized to it on its shorter side and the map written at that size",
    )
    p.add_argument(
        "--annotators",
        type=Path,
        default=None,
        help="folder with annotator weights (default: $DREAMWIRE_ANNOTATORS)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from dreamwire.backend.cli.image_files import open_image
    from dreamwire.backend.conditioning import preprocess

    if args.annotators is not None:
        os.environ["DREAMWIRE_ANNOTATORS"] = str(args.annotators)
    with open_image(args.image, "image") as im:
        mode = "RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB"
        image = np.asarray(im.convert(mode))
    params = {"low": args.low, "high": args.high, "seed": args.seed, "factor": args.factor}
    if args.threshold is not None:
        params["threshold"] = args.threshold
    out = preprocess.run(args.type, image, processor_res=args.res, **params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(args.out)
    print(f"{args.type}: wrote {args.out} ({out.shape[1]}x{out.shape[0]})")
    return 0
