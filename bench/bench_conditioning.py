"""Conditioning overhead on the tiny models, same process, alternating runs.

    python bench/bench_conditioning.py

Measures (CPU, tiny SD1): a ControlNet job against diffusers' StableDiffusionControlNetPipeline
with the same ControlNet (ratio engine / diffusers), a two-ControlNet job against one, and the
cost of applying + restoring a LoRA (ms). Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # cn_helpers imports tests.engine.reference
sys.path.insert(0, str(ROOT / "tests" / "conditioning"))


def main() -> None:
    torch.set_num_threads(1)
    from cn_helpers import BASE, SIZE, load_net, noise_image, reference_pipe, run_job_settings
    from PIL import Image

    from dreamwire.backend.conditioning import engine_extensions, lora
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.tiny import build_all
    from dreamwire.shared.job import ControlUnit, Job

    root = Path(tempfile.mkdtemp(prefix="dw-bench-cond-"))
    build_all(root)
    engine = Engine(ModelLibrary([root]), device="cpu", extensions=engine_extensions())
    ctl = noise_image(1)
    steps = 8
    job = dict(BASE, sampler="Euler", steps=steps)
    one = Job(**job, controls=[ControlUnit(type="canny", image=ctl)])
    two = Job(
        **job, controls=[ControlUnit(type="canny", image=ctl), ControlUnit(type="depth", image=ctl)]
    )
    net = load_net(engine, root / "models" / "ControlNet" / "control_v11p_sd15_canny.safetensors")
    pipe = reference_pipe(engine, "StableDiffusionControlNetPipeline", [net])

    def ref():
        return run_job_settings(
            pipe,
            num_inference_steps=steps,
            image=[Image.fromarray(ctl)],
            controlnet_conditioning_scale=[1.0],
            **SIZE,
        )

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    engine.run(one), engine.run(two), ref()  # warm up: loading, caches
    t_eng, t_ref, t_two = [], [], []
    for _ in range(5):
        t_eng.append(timed(lambda: engine.run(one)))
        t_ref.append(timed(ref))
        t_two.append(timed(lambda: engine.run(two)))
    comps = engine.load("tiny-sd1").components
    path = root / "models" / "Lora" / "tiny_style.safetensors"
    t_lora = []
    for _ in range(20):
        t = time.perf_counter()
        patch = lora.apply([(lora.read_cached(path, "tiny_style"), 1.0, 1.0)], comps)
        patch.restore()
        t_lora.append(time.perf_counter() - t)
    same = np.array_equal(engine.run(one).images[0].image, ref())
    med = statistics.median
    print(
        json.dumps(
            {
                "controlnet_engine_over_diffusers": round(med(t_eng) / med(t_ref), 3),
                "two_controlnets_over_one": round(med(t_two) / med(t_eng), 3),
                "lora_apply_restore_ms": round(med(t_lora) * 1000, 2),
                "diffusers_controlnet_job_ms": round(med(t_ref) * 1000, 1),
                "outputs_equal": bool(same),
            }
        )
    )


if __name__ == "__main__":
    main()
