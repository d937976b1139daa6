"""Shared by the LoRA training tests: a models root of their own holding one of the suite's
tiny checkpoints (so the LoRAs trained there never show in the shared library's listings),
an engine over it, and a trained LoRA file read by diffusers' own `load_lora_weights`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch


def own_root(tmp_path_factory, tiny_models: Path, stem: str) -> Path:
    """A root with `stem`.safetensors copied from the suite's tiny models (built once)."""
    name = Path("models") / "Stable-diffusion" / f"{stem}.safetensors"
    root = tmp_path_factory.mktemp(f"train-{stem}")
    (root / name).parent.mkdir(parents=True)
    shutil.copyfile(tiny_models / name, root / name)
    return root


def write_pictures(folder: Path, sizes, captions, seed: int) -> None:
    """Random pictures of `sizes` (width, height) as 0.png, 1.png...; a caption beside each
    that has one (None: the folder's token is its caption)."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i, ((w, h), caption) in enumerate(zip(sizes, captions, strict=True)):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
        if caption is not None:
            (folder / f"{i}.txt").write_text(caption, encoding="utf-8")


def training_engine(root: Path):
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.training.job_run import run_job

    return Engine(
        ModelLibrary([root]), device="cpu", extensions=engine_extensions(), trainer=run_job
    )


def through_diffusers(pipe, path: Path, parts: list[str], prompt: str, steps: int):
    """The picture without and with the LoRA at `path` (diffusers' load_lora_weights), how
    many LoRA layers diffusers put on each of `parts` (pipeline components), and the file's
    `.lora_down.weight` keys."""
    from safetensors import safe_open

    pipe.set_progress_bar_config(disable=True)

    def picture() -> np.ndarray:
        gen = torch.Generator("cpu").manual_seed(5)
        args = dict(num_inference_steps=steps, height=32, width=32, output_type="np")
        with torch.inference_mode():
            return pipe(prompt, generator=gen, **args).images[0]

    plain = picture()
    pipe.load_lora_weights(str(path), adapter_name="trained")
    try:
        layers = [
            sum(n.endswith("lora_A.trained") for n, _ in getattr(pipe, p).named_modules())
            for p in parts
        ]
        with_lora = picture()
    finally:
        pipe.unload_lora_weights()
    with safe_open(str(path), "pt") as f:
        names = f.keys()  # a safe_open handle is not iterable
    return plain, with_lora, layers, [k for k in names if k.endswith(".lora_down.weight")]
