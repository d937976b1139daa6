"""`dreamwire train-lora --models ROOT --data DIR --name NAME`: train a LoRA on an SD1.x
checkpoint from a kohya-layout folder into ROOT/models/Lora/NAME.safetensors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .engine_options import add_engine_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train-lora", help="train a LoRA (SD1.x) from a folder of images into the LoRA folder"
    )
    p.add_argument("--models", type=Path, required=True, metavar="ROOT", help="model root")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="images (+ .txt)")
    p.add_argument("--name", required=True, help="the LoRA's name: <lora:NAME:1>")
    p.add_argument("--model", default="", help="checkpoint to train on (default: the first)")
    # kohya_ss's names beside the short ones, with its defaults.
    p.add_argument("--rank", "--network_dim", dest="rank", type=int, default=8)
    p.add_argument("--alpha", "--network_alpha", dest="alpha", type=float, default=1.0)
    p.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=1e-4)
    p.add_argument("--steps", "--max_train_steps", dest="steps", type=int, default=1600)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_grad_norm", type=float, default=1.0, help="0: no clipping")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a LoRA of the same name (or a stopped run's saved state)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from the state a stopped run of NAME saved (Lora/NAME.train-state)",
    )
    p.add_argument(
        "--save_every_n_steps",
        type=int,
        default=0,
        metavar="N",
        help="save the run's state every N steps too (it is always saved when stopped)",
    )
    add_engine_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreamwire.backend.training.options import LoraTrainOptions
    from dreamwire.backend.training.run import TrainRequest, output_path, run_training
    from dreamwire.backend.training.state import state_path

    from .engine_options import build_engine

    options = LoraTrainOptions(
        network_dim=args.rank,
        network_alpha=args.alpha,
        learning_rate=args.lr,
        max_train_steps=args.steps,
        resolution=args.resolution,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
    )
    request = TrainRequest(
        data=args.data,
        name=args.name,
        lora_dir=args.models / "models" / "Lora",
        model=args.model,
        options=options,
        overwrite=args.overwrite,
        resume=args.resume,
        save_every=args.save_every_n_steps,
    )
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
