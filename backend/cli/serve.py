"""`dreamwire serve`: run the backend server.

Prints one line `dreamwire: listening on tcp://HOST:PORT` on stdout once it accepts
connections (with port 0 the system picks a free port and this line says which); logs go to
the console (stderr) and to a log file in the output folder.

Accepted jobs are kept in OUT/queue/<job_id>/ until their end is final; on start, jobs found
there (left by a backend that was killed or stopped) are validated and queued again before
the listening line is printed, and unreadable entries are moved to OUT/queue-rejected/.

With `--ray [ADDRESS]` the jobs run on Ray actors (the `cluster` extra; server/ray_pool.py)
of the cluster at ADDRESS, or of a local one; this process keeps the ZeroMQ front.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
from pathlib import Path

from dreamwire.backend.cli.engine_options import (
    add_engine_arguments,
    apply_fast_path_choice,
    build_engine,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.protocol import Limits

READY_PREFIX = "dreamwire: listening on "


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the backend server (ZeroMQ)")
    p.add_argument(
        "--models",
        nargs="+",
        type=Path,
        required=True,
        metavar="ROOT",
        help="model folders (A1111 or ComfyUI layout)",
    )
    p.add_argument(
        "--bind",
        default="tcp://127.0.0.1:5790",
        help="address to listen on; port 0 picks a free port (default %(default)s)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder for results")
    p.add_argument(
        "--keys",
        type=Path,
        metavar="DIR",
        help="folder with server.key_secret (from `dreamwire keys DIR`): turns on CurveZMQ",
    )
    p.add_argument(
        "--allow-client-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a client's public key file (or a folder of *.key files); repeatable",
    )
    add_engine_arguments(p)
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run jobs on Ray actors, one per GPU, of the cluster at ADDRESS (`ray start "
        "--head` prints it), or of a local cluster without ADDRESS; needs dreamwire[cluster]",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        metavar="N",
        help="actors to start (default: one per GPU of the cluster; 2 on a CPU-only one)",
    )
    p.add_argument(
        "--watch-models",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="look for added, removed or rewritten model files this often and tell the "
        "connected clients (models_changed); 0: only when a client asks (default %(default)s)",
    )
    p.add_argument("--log", type=Path, help="log file (default OUT/dreamwire-server.log)")
    d = Limits()
    p.add_argument("--max-message-mb", type=float, default=d.max_message_bytes / 2**20)
    p.add_argument("--max-pixels", type=int, default=d.max_pixels)
    p.add_argument("--max-images", type=int, default=d.max_images)
    p.add_argument("--max-queue", type=int, default=d.max_queue)
    p.set_defaults(func=run)


def setup_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("dreamwire")
    root.setLevel(logging.INFO)
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(log_file, encoding="utf-8"),
    ):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def run(args: argparse.Namespace) -> int:
    from dreamwire.backend.server import Server, ServerConfig
    from dreamwire.backend.server.auth import is_loopback_bind

    if not is_loopback_bind(args.bind) and args.keys is None:
        raise DreamwireError(
            ErrorCode.UNAUTHORIZED,
            f"{args.bind} is reachable from other machines: give --keys DIR and --allow-client-key "
            "FILE (create keys with `dreamwire keys DIR`), or bind to tcp://127.0.0.1",
        )
    if args.keys is not None and not args.allow_client_key:
        raise DreamwireError(ErrorCode.UNAUTHORIZED, "--keys needs at least one --allow-client-key")
    if args.ray is not None:  # before anything slow: a missing extra is said at once
        from dreamwire.backend.server.ray_pool import import_ray

        import_ray()
    setup_logging(args.log or args.out / "dreamwire-server.log")
    log = logging.getLogger("dreamwire.server")

    limits = Limits(
        max_message_bytes=int(args.max_message_mb * 2**20),
        max_pixels=args.max_pixels,
        max_images=args.max_images,
        max_queue=args.max_queue,
    )
    apply_fast_path_choice(args)
    engine, store = build_backend(args.models, args.out, args.device, args.low_vram)
    config = ServerConfig(
        bind=args.bind,
        limits=limits,
        keys_dir=args.keys,
        client_keys=list(args.allow_client_key),
        queue_dir=args.out / "queue",
        rejected_dir=args.out / "queue-rejected",
        watch_roots=list(args.models),
        watch_interval_s=args.watch_models,
    )
    server = Server(
        engine,
        store.save,
        store.load,
        config,
        save_failure=store.save_failure,
        executor=ray_executor(args, engine) if args.ray is not None else None,
    )
    address = server.bind()
    restored = server.restore_queue()
    if restored:
        log.info("%d job(s) restored from %s", len(restored), args.out / "queue")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    log.info(
        "serving models from %s, results to %s, device %s",
        ", ".join(map(str, args.models)),
        args.out,
        server.capabilities.get("device"),
    )
    print(READY_PREFIX + address, flush=True)
    server.serve_forever()
    log.info("stopped")
    return 0


def actor_engine(
    models: list[Path], device: str | None, low_vram: bool | None, fast: bool, out: Path
):
    """The engine of one Ray actor, built in the actor's process."""
    if not fast:
        from dreamwire.backend.engine import fastpath

        fastpath.set_enabled(False)
    return build_engine(models, device, low_vram, training_uploads(out))


def ray_executor(args: argparse.Namespace, engine):
    """The Ray actor pool's factory; `engine` here only answers for the library."""
    from dreamwire.backend.server.ray_pool import PoolOptions, RayPool

    options = PoolOptions(
        make_engine=functools.partial(
            actor_engine,
            list(args.models),
            args.device,
            args.low_vram,
            not args.no_fast_path,
            args.out,
        ),
        address=args.ray,
        actors=args.ray_actors,
        estimate=engine.memory_needs,  # per actor, from this library's model sizes
    )

    def default_model() -> str:  # what a job naming no model runs on, for model affinity
        try:
            return engine.default_model()
        except DreamwireError:
            return ""

    return lambda feed: RayPool(feed, options, default_model)


def build_backend(models: list[Path], out: Path, device: str | None, low_vram: bool | None):
    """The engine and the result store the server saves to and loads from."""
    from dreamwire.backend.store import ResultStore

    return build_engine(models, device, low_vram, training_uploads(out)), ResultStore(out)


def training_uploads(out: Path) -> Path:
    """Where a train_lora job's own pictures are written (a kohya folder per job)."""
    return out / "training"
