"""`dreamwire generate`: run one job in-process (or on a backend with --server) and save
the PNGs (with A1111 infotext) and a JSON record to the output folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from dreamwire import catalog
from dreamwire.backend.cli import unit_args
from dreamwire.backend.cli.engine_options import (
    add_engine_arguments,
    apply_fast_path_choice,
    build_engine,
)
from dreamwire.backend.cli.image_files import open_image
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.families import ModelFamily
from dreamwire.shared.job import INPAINT_FILLS, INPAINT_MODELS, HiresFix, Job, Outpaint, Upscale
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.materials import MATERIAL_MAPS, Materials
from dreamwire.shared.panel_job import panel_job

DEFAULT_MODEL = "tiny-sd1"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate images (txt2img, img2img, inpaint)")
    add_job_arguments(p)
    p.set_defaults(func=main)


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that describe a job and where it runs (`generate`'s; `xyz` takes them for
    its base job)."""
    p.add_argument(
        "--mode",
        choices=[m.value for m in JobMode],
        default=None,
        help="the job's mode (default: from the flags: --upscale, --mask/--outpaint, "
        "--init-image, else txt2img); edit needs an edit model",
    )
    p.add_argument(
        "--model", default="", help=f"checkpoint name (default: {DEFAULT_MODEL} or the first found)"
    )
    p.add_argument("--prompt", default="")
    p.add_argument("--negative", default="")
    # Sampling flags left out take the model family's defaults (SD: DPM++ 2M Karras, 20
    # steps, CFG 7; Flux: Euler, CFG 1, Distilled CFG 3.5), as a host panel switches to them.
    p.add_argument("--sampler", default=None, help="A1111 sampler name (default: the family's)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument(
        "--distilled-cfg",
        type=float,
        default=None,
        help="Forge's Distilled CFG Scale, for models that take one (Flux dev: 3.5)",
    )
    p.add_argument(
        "--cfg-rescale",
        type=float,
        default=0.0,
        help="CFG rescale 0..1 (A1111's CFG Rescale extension; ~0.7 for v-prediction models)",
    )
    p.add_argument("--seed", type=int, default=-1, help="-1: random (the chosen seed is printed)")
    p.add_argument("--subseed", type=int, default=-1)
    p.add_argument("--subseed-strength", type=float, default=0.0)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--init-image", type=Path, help="image file for img2img / inpaint")
    p.add_argument("--strength", type=float, default=0.75, help="denoising strength 0..1")
    p.add_argument("--mask", type=Path, help="mask image (white = repaint) for inpainting")
    p.add_argument("--mask-blur", type=int, default=4)
    p.add_argument("--only-masked", action="store_true", help='A1111 "Inpaint area: Only masked"')
    p.add_argument("--padding", type=int, default=32, help="only-masked padding in pixels")
    p.add_argument(
        "--inpaint-fill",
        choices=INPAINT_FILLS,
        default="original",
        help='A1111 "Masked content": what the masked area starts from',
    )
    p.add_argument(
        "--inpaint-model",
        choices=INPAINT_MODELS,
        default="auto",
        help="auto: inpaint on Flux dev runs on a Flux Fill model from the library when there "
        "is one; off: on the model named",
    )
    p.add_argument(
        "--outpaint",
        type=int,
        nargs=4,
        metavar=("LEFT", "RIGHT", "TOP", "BOTTOM"),
        help="grow the canvas",
    )
    p.add_argument("--hires-scale", type=float, help="Hires.fix upscale (e.g. 2)")
    p.add_argument(
        "--hires-width",
        type=int,
        default=0,
        help="Hires.fix: resize width to (A1111 'Resize width to'; 0: from the height or scale)",
    )
    p.add_argument(
        "--hires-height",
        type=int,
        default=0,
        help="Hires.fix: resize height to (0: from the width's aspect ratio, or the scale)",
    )
    p.add_argument("--hires-denoise", type=float, default=0.5)
    p.add_argument("--hires-steps", type=int, default=0)
    p.add_argument(
        "--hires-upscaler",
        default="Latent",
        help="Latent, Lanczos, Nearest or an upscaler model (models/ESRGAN)",
    )
    p.add_argument("--hires-prompt", default="", help="second-pass prompt (default: --prompt)")
    p.add_argument("--hires-negative", default="", help="second-pass negative prompt")
    p.add_argument(
        "--upscale",
        type=float,
        help="upscale --init-image by this factor (A1111 SD upscale; Extras with --no-refine)",
    )
    p.add_argument(
        "--maps",
        default=",".join(Materials().maps),
        help="--mode materials: the PBR maps to make from --init-image, comma-separated, of "
        f"{', '.join(MATERIAL_MAPS)} (Marigold models in models/Marigold)",
    )
    p.add_argument("--upscaler", default="Lanczos", help="Lanczos, Nearest or an upscaler model")
    p.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="upscale only, no img2img of the tiles (A1111 Extras)",
    )
    p.add_argument(
        "--upscale-tile", type=int, default=0, help="tile side (0: the model's native size)"
    )
    p.add_argument("--upscale-overlap", type=int, default=64, help="tile overlap in pixels")
    p.add_argument(
        "--no-tile-control",
        dest="tile_control",
        action="store_false",
        help="no tile ControlNet on the tiles",
    )
    p.add_argument(
        "--control",
        nargs="+",
        action="append",
        default=[],
        metavar=("TYPE[:MODEL]", "IMAGE|KEY=VALUE"),
        help=unit_args.CONTROL_HELP,
    )
    p.add_argument(
        "--region",
        nargs="+",
        action="append",
        default=[],
        metavar=("PROMPT", "MASK [WEIGHT]"),
        help=unit_args.REGION_HELP,
    )
    p.add_argument("--vae", default="", help="VAE name (default: the checkpoint's own)")
    p.add_argument("--clip-skip", type=int, default=1)
    p.add_argument(
        "--seamless", nargs="?", const="both", default="none", choices=("none", "both", "x", "y")
    )
    p.add_argument("--tiled-vae", action="store_true", default=None)
    p.add_argument(
        "--attention-maps",
        action="store_true",
        help="DAAM heat maps per prompt word, written beside each image as <image>-daam-<word>.png",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the config's, else ./out)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the result (paths, seeds, timings) as JSON"
    )
    p.add_argument(
        "--models", type=Path, nargs="+", default=None, metavar="ROOT", help="model roots"
    )
    add_engine_arguments(p)
    p.add_argument("--server", default=None, help="run on a backend, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--server-key", default=None, help="the backend's public CurveZMQ key")
    p.add_argument("--client-key", default=None, help="this client's secret CurveZMQ key")


# -- inputs --------------------------------------------------------------------------------
def read_image(path: Path, what: str, mode: str = "RGB") -> np.ndarray:
    with open_image(path, what) as img:
        arr = np.asarray(img.convert(mode))
    return arr.copy() if mode == "L" else np.ascontiguousarray(arr)


def with_family_defaults(args: argparse.Namespace, family: ModelFamily) -> argparse.Namespace:
    """The sampling flags the artist left out, filled from the model's defaults (its
    family's, or its own: schnell's 4 steps); the Distilled CFG is left to the backend,
    which knows each model's (Flux Fill and Kontext have their own)."""
    d = family.defaults
    for name in ("sampler", "steps", "cfg"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(d, name))
    return args  # --distilled-cfg left out stays None: the model's own default


def model_family(args: argparse.Namespace) -> ModelFamily:
    """The family of the model the job will run on: from the library's scan (file headers,
    nothing loaded) when it runs here; guessed from the name for a server (whose welcome
    the wire client does not have before the job is built)."""
    if not args.server:
        from dreamwire.backend.library import Kind, ModelLibrary

        library = ModelLibrary(model_roots(args))
        try:
            entry = library.find(Kind.CHECKPOINT, args.model or library.default_checkpoint().name)
        except DreamwireError:
            entry = None  # the engine says which model is missing, with the names it has
        if entry is not None:
            from dreamwire.backend.engine.planning import model_defaults

            key = catalog.family_of(entry.arch)
            # With the model's own defaults (Flux schnell: 4 steps).
            own = model_defaults(key, entry.arch or "")
            return dataclasses.replace(families.family(key), defaults=own)
    return families.family(families.guess_from_name(args.model))


def build_job(args: argparse.Namespace, family: ModelFamily | None = None) -> Job:
    # The flags name the prompt and sampling settings as a host panel does (PanelSampling),
    # so they map onto the Job through the hosts' one mapping; the rest are the CLI's own.
    if family is None:
        family = families.family(families.guess_from_name(args.model))
    job = panel_job(
        with_family_defaults(args, family),
        family,
        mode=None if args.mode is None else JobMode(args.mode),
        priority=Job.priority,  # not an artist waiting at a panel
        vae=args.vae,
        subseed=args.subseed,
        subseed_strength=args.subseed_strength,
        cfg_rescale=args.cfg_rescale,
        width=args.width,
        height=args.height,
        batch=args.batch,
        clip_skip=args.clip_skip,
        strength=args.strength,
        mask_blur=args.mask_blur,
        inpaint_full_res=args.only_masked,
        inpaint_padding=args.padding,
        inpaint_fill=args.inpaint_fill,
        inpaint_model=args.inpaint_model,
        seamless=args.seamless,
        tiled_vae=args.tiled_vae,
        attention_maps=args.attention_maps,
    )
    if args.init_image is not None:
        job.init_image = read_image(args.init_image, "init image")
    if args.mask is not None:
        job.mask = read_image(args.mask, "mask", "L")
    if args.outpaint:
        job.outpaint = Outpaint(*args.outpaint)
    if args.hires_scale or args.hires_width or args.hires_height:
        job.hires = HiresFix(
            scale=args.hires_scale or HiresFix.scale,
            width=args.hires_width,
            height=args.hires_height,
            denoise=args.hires_denoise,
            steps=args.hires_steps,
            upscaler=args.hires_upscaler,
            prompt=args.hires_prompt,
            negative=args.hires_negative,
        )
    if args.upscale is not None:
        job.upscale = Upscale(
            scale=args.upscale,
            upscaler=args.upscaler,
            refine=args.refine,
            tile=args.upscale_tile,
            overlap=args.upscale_overlap,
            tile_control=args.tile_control,
        )
    if job.mode is JobMode.MATERIALS:
        job.materials = Materials(maps=[m.strip() for m in args.maps.split(",") if m.strip()])
    job.controls = [unit_args.parse_control(w, i) for i, w in enumerate(args.control)]
    job.regions = [unit_args.parse_region(w, i) for i, w in enumerate(args.region, 1)]
    return job.validate()


# -- models --------------------------------------------------------------------------------
def dreamwire_home() -> Path:
    return Path(os.environ.get("DREAMWIRE_HOME") or Path.home() / ".cache" / "dreamwire")


def tiny_root() -> Path:
    """The built-in tiny models, built once (a few seconds) on first use."""
    root = dreamwire_home() / "tiny"
    if (root / "models" / "Stable-diffusion" / f"{DEFAULT_MODEL}.safetensors").is_file():
        return root
    from dreamwire.backend.tiny import build_all

    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the tiny default models in {root} ...", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="tiny-", dir=root.parent))
    build_all(tmp)
    if root.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(root)
    return root


def model_roots(args: argparse.Namespace) -> list[Path]:
    """--models, then the config file's roots; the built-in tiny models when neither has any."""
    from dreamwire.backend import config

    return config.model_roots(args.models) or [tiny_root()]


def model_from_path(args: argparse.Namespace) -> argparse.Namespace:
    """A local run's --model naming a file (or a diffusers folder) on disk: the file is
    offered as a checkpoint of its own root (a link to it in a Stable-diffusion folder under
    the cache, so the library scans it as it scans any), and --model becomes its name. The
    wire keeps refusing paths: a backend serves only its own folders."""
    if args.server or not args.model or not ("/" in args.model or "\\" in args.model):
        return args
    path = Path(args.model).expanduser()
    if not path.exists():
        return args  # the library's refusal names what it has
    import hashlib

    from dreamwire.backend import config
    from dreamwire.backend.library.catalog import cache_root

    path = path.resolve()
    root = cache_root() / "model-paths" / hashlib.sha1(str(path).encode()).hexdigest()[:16]
    link = root / "models" / "Stable-diffusion" / path.name
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path, target_is_directory=path.is_dir())
    roots = list(config.model_roots(args.models)) + [root]
    name = path.name if path.is_dir() else path.stem
    return argparse.Namespace(**{**vars(args), "models": roots, "model": name})


# -- running -------------------------------------------------------------------------------
class Bar:
    """A tqdm bar fed by Progress events."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def __call__(self, progress) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if progress.state != "generating" or not progress.total:
            if progress.state in ("loading_model", "decoding"):
                self.close()
                print(f"{progress.state}: {progress.message}".rstrip(": "), file=sys.stderr)
            return
        if self.bar is None or self.bar.total != progress.total:
            self.close()
            self.bar = tqdm(total=progress.total, unit="step", file=sys.stderr)
        self.bar.update(progress.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_local(args: argparse.Namespace, job: Job, on_progress):
    apply_fast_path_choice(args)
    engine = build_engine(model_roots(args), args.device, args.low_vram)
    return engine.run(job, on_progress=on_progress)


def server_client(args: argparse.Namespace):
    """The wire client to the backend at args.server, with the CurveZMQ keys given."""
    from dreamwire.shared.client import Client

    return Client(args.server, server_public_key=args.server_key, client_secret_key=args.client_key)


def run_remote(args: argparse.Namespace, job: Job, on_progress):
    """Run `job` on the backend at args.server through the wire client."""
    client = server_client(args)
    try:
        return client.run(job, timeout=3600.0, on_progress=on_progress)
    finally:
        client.close()


def job_runner(args: argparse.Namespace):
    """(run one job, close) for commands that run many jobs: an engine built once here, or
    the backend's queue (--server), one job at a time."""
    if args.server:
        client = server_client(args)
        return (lambda job, bar: client.run(job, timeout=3600.0, on_progress=bar)), client.close
    apply_fast_path_choice(args)
    engine = build_engine(model_roots(args), args.device, args.low_vram)
    return (lambda job, bar: engine.run(job, on_progress=bar)), lambda: None


def _heat_paths(g) -> dict:
    from dreamwire.backend.store import heat_map_path

    if not g.heat_maps:
        return {}
    return {"heat_maps": {h.word: str(heat_map_path(Path(g.path), h.word)) for h in g.heat_maps}}


def main(args: argparse.Namespace) -> int:
    from dreamwire.backend.store import ResultStore

    args = model_from_path(args)
    job = build_job(args, model_family(args))
    bar = Bar(quiet=args.json)
    try:
        result = (run_remote if args.server else run_local)(args, job, bar)
    finally:
        bar.close()
    from dreamwire.backend import config

    saved = ResultStore(config.output_dir(args.out)).save(job, result)
    if args.json:
        record = {
            "job_id": saved.job_id,
            "model": saved.model,
            "images": [
                {"path": g.path, "seed": g.seed, "infotext": g.infotext, **_heat_paths(g)}
                for g in saved.images
            ],
            "timings": saved.timings,
        }
        if job.controls:  # the units as run: the ControlNet the backend picked for each
            record["controlnets"] = unit_args.resolved_units(saved.images[0].infotext)
        print(json.dumps(record, indent=2))
    else:
        for g in saved.images:
            print(f"seed {g.seed}: {g.path}")
        print(f"{len(saved.images)} image(s) written to {Path(saved.images[0].path).parent}")
    return 0
