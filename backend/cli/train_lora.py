"""`dreamwire train-lora --models ROOT --data DIR --name NAME`: train a LoRA on an SD1.x or
SDXL checkpoint from a kohya-layout folder into ROOT/models/Lora/NAME.safetensors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamwire.backend.training.options import (
    LoraTrainOptions,
    add_kohya_arguments,
    kohya_values,
)
from dreamwire.backend.training.request import TrainRequest

from .engine_options import add_engine_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train-lora", help="train a LoRA (SD1.x, SDXL) from a folder of images into the LoRA folder"
    )
    p.add_argument("--models", type=Path, required=True, metavar="ROOT", help="model root")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="images (+ .txt)")
    p.add_argument("--name", required=True, help="the LoRA's name: <lora:NAME:1>")
    p.add_argument("--model", default="", help="checkpoint to train on (default: the first)")
    # kohya_ss's names (and the short ones), types and defaults: the one table in
    # backend/training/options.py, which a queue job's settings go through too.
    add_kohya_arguments(p, LoraTrainOptions, TrainRequest)
    add_engine_arguments(p)
    p.set_defaults(func=run)


def request_from_args(args: argparse.Namespace) -> TrainRequest:
    return TrainRequest.from_kohya(
        kohya_values(args, LoraTrainOptions, TrainRequest),
        data=args.data,
        name=args.name,
        lora_dir=args.models / "models" / "Lora",
        model=args.model,
    )


def run(args: argparse.Namespace) -> int:
    from dreamwire.backend.training.run import output_path, run_training
    from dreamwire.backend.training.state import state_path

    from .engine_options import build_engine

    request = request_from_args(args)
    engine = build_engine([args.models], args.device, args.low_vram)

    def report(step) -> None:
        print(f"step {step.step}/{step.total} loss {step.loss:.5f}", flush=True)

    state = state_path(output_path(request))
    try:
        trained = run_training(engine, request, report)
    except KeyboardInterrupt:
        # The loop saved the finished steps' state on its way out.
        if state.is_file():
            print(f"stopped; state saved in {state}: run again with --resume", file=sys.stderr)
        return 130
    print(f"saved {trained.path}", file=sys.stderr)
    return 0
