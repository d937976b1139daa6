"""Does low-VRAM mode fit? Peak GPU memory of each plan, measured on fake CUDA tensors.

    python bench/bench_lowvram.py [--json out.json] [--only sd|flux]

No GPU is needed (bench/fake_gpu.py runs the real SD1.5 / SDXL architectures on fake
tensors and counts every allocation). The simulation is first checked against the H200
reference figures in shared/bench (plain diffusers: SD1.5 pipeline peak, VAE decode peaks at
512/1024/2048); the worst ratio of real to simulated activation memory becomes a calibration
factor that every later figure is multiplied by (weights are exact, activations are scaled),
so workspaces and fragmentation the simulation cannot see are covered by the measurement.

Then, for each target of the low-VRAM mode (issue 7: SD1.5 512x512 within 4 GiB, SDXL
1024x1024 within 8 GiB, a 4096x4096 decode within 4 GiB), it asks the engine's memory plan
(backend/engine/memory_plan.py) what it would do with exactly that much free memory, runs
that plan's stages with only the weights the plan keeps on the GPU (model CPU offload: one
model at a time), and prints the calibrated peak next to the limit and the plan's own
estimate. The plan must fit, and its estimate must not be below the calibrated peak
(it decides from the estimate). Exit status 1 when either fails.

Flux.1 dev at 1024x1024 (issue 12; bench/pipeline_sim.py builds the real 11.9 B transformer,
T5-XXL, CLIP-L and the 16-channel VAE on fake tensors in seconds): the peak of each stage
with the transformer stored as bf16, fp8 (layerwise casting), GGUF Q4_K and NF4, with every
model resident, with model CPU offload and with sequential CPU offload, against the issue's
targets (Q4/NF4 with offload within 12 GiB, sequential offload within 8 GiB); then what the
memory plan chooses for each format with 24, 12 and 8 GiB free, checked as above.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fake_gpu as fg  # noqa: E402
from fake_gpu import Stage  # noqa: E402

from dreamwire.backend.engine import memory_plan  # noqa: E402
from dreamwire.backend.engine.tiled_vae import tiled  # noqa: E402
from dreamwire.backend.library.weight_formats import weight_format  # noqa: E402

GiB = 2**30
ARCH = {"sd1": "sd1", "sdxl": "sdxl-base"}  # family -> catalog config
FP16 = torch.float16
# shared/bench/2026-11-26-h200-baseline.json (plain diffusers, fp16, H200).
REFERENCE = {
    "sd15_pipe_512": 2.4 * GiB,
    "vae_decode_512": 2.4 * GiB,
    "vae_decode_1024": 4.18 * GiB,
    "vae_decode_2048": 11.31 * GiB,
}


class Sim:
    """The architectures of one family as fake CUDA modules, built once and reusable: the
    fake mode is on only while a stage runs, so one Sim serves any number of stages (and
    tests) in turn, with fewer ControlNets through `using`."""

    def __init__(self, family: str, controlnets: int = 0):
        arch = ARCH[family]
        self.family = family
        vae_dtype = torch.float32 if family == "sdxl" else FP16  # diffusers' force_upcast
        # Built on meta outside the fake mode: fake parameters cannot be converted in place.
        unet = fg.meta_unet(arch, FP16)
        nets = [fg.meta_controlnet(unet, FP16) for _ in range(controlnets)]
        vae = fg.meta_vae(arch, vae_dtype)
        text = fg.meta_text_encoders(arch, FP16)
        self._fake = fg.fake_mode()
        with self._fake:
            self.controlnets = [fg.on_fake_cuda(m) for m in nets]
            self.unet = fg.on_fake_cuda(unet)
            self.vae = fg.on_fake_cuda(vae)
            self.text = [fg.on_fake_cuda(m) for m in text]

    def using(self, controlnets: int) -> Sim:
        """The same fake modules with only the first `controlnets` ControlNets attached."""
        if controlnets > len(self.controlnets):
            raise ValueError(f"built with {len(self.controlnets)} ControlNets, not {controlnets}")
        view = copy.copy(self)
        view.controlnets = self.controlnets[:controlnets]
        return view

    def all_weights(self) -> list[torch.nn.Module]:
        return [*self.text, self.unet, *self.controlnets, self.vae]

    def _run(self, name: str, resident, work) -> Stage:
        live = fg.LiveBytes()
        with self._fake, live, torch.no_grad():
            weights = live.hold(*resident)
            work()
        return Stage(name, weights, live.peak)

    def text_stage(self, resident=None) -> Stage:
        def work():
            ids = torch.zeros(2, 77, dtype=torch.long)
            for enc in self.text:
                out = enc(ids, output_hidden_states=True)
                del out

        return self._run("text encoders", resident or self.text, work)

    def unet_stage(self, side: int, batch: int = 1, sliced: bool = False, resident=None) -> Stage:
        cfg = self.unet.config
        n = 2 * batch  # classifier-free guidance: one call on the doubled batch

        def work():
            lat = side // 8
            x = torch.randn(n, cfg.in_channels, lat, lat, dtype=FP16)
            ctx = torch.randn(n, 77, cfg.cross_attention_dim, dtype=FP16)
            t = torch.full((n,), 500)
            extra = {}
            if cfg.addition_embed_type == "text_time":
                time_ids = 6 * cfg.addition_time_embed_dim
                pooled = cfg.projection_class_embeddings_input_dim - time_ids
                extra = {
                    "added_cond_kwargs": {
                        "text_embeds": torch.randn(n, pooled, dtype=FP16),
                        "time_ids": torch.randn(n, 6, dtype=FP16),
                    }
                }
            down, mid = None, None
            for net in self.controlnets:
                hint = torch.randn(n, 3, side, side, dtype=FP16)
                d, m = net(x, t, ctx, controlnet_cond=hint, return_dict=False, **extra)
                down = d if down is None else [a + b for a, b in zip(down, d, strict=True)]
                mid = m if mid is None else mid + m
                del hint, d, m
            out = self.unet(
                x,
                t,
                encoder_hidden_states=ctx,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                return_dict=False,
                **extra,
            )[0]
            del out

        modules = [self.unet, *self.controlnets]
        with _sliced(modules, sliced):
            label = f"UNet {side}x{side}" + (" sliced" if sliced else "")
            return self._run(label, resident or modules, work)

    def decode_stage(self, side: int, tile_px: int | None, resident=None) -> Stage:
        def work():
            z = torch.randn(1, 4, side // 8, side // 8, dtype=self.vae.dtype)
            img = self.vae.decode(z).sample
            del img

        with tiled(self.vae, tile_px is not None, tile_px), _one_blend_row(self.vae):
            label = f"VAE decode {side}x{side}" + (f" tiles {tile_px}" if tile_px else "")
            return self._run(label, resident or [self.vae], work)


@contextlib.contextmanager
def _sliced(modules, enabled: bool):
    """What pipe.enable_attention_slicing() does to the UNet and ControlNets, undone after."""
    if not enabled:
        yield
        return
    saved = [m.attn_processors for m in modules]
    for m in modules:
        m.set_attention_slice("auto")
    try:
        yield
    finally:
        for m, procs in zip(modules, saved, strict=True):
            m.set_attn_processor(procs)


_one_blend_row = fg.one_blend_row  # a module name, so that a test can swap it


# -- calibration against the H200 reference -------------------------------------------------


def calibrate(sim: Sim | None = None) -> tuple[float, list[dict]]:
    """The calibration factor and its table, on `sim` (an SD1 Sim) or a new one."""
    sim = Sim("sd1") if sim is None else _check_family(sim, "sd1").using(0)
    everything = sim.all_weights()
    rows = [
        (
            "sd15_pipe_512",
            [sim.unet_stage(512, resident=everything), sim.decode_stage(512, None, everything)],
        ),
        ("vae_decode_512", [sim.decode_stage(512, None, everything)]),
        ("vae_decode_1024", [sim.decode_stage(1024, None, everything)]),
        ("vae_decode_2048", [sim.decode_stage(2048, None, everything)]),
    ]
    table, factor = [], 1.0
    for key, stages in rows:
        worst = max(stages, key=lambda s: s.peak)
        real = REFERENCE[key]
        ratio = (real - worst.weights) / max(worst.activations, 1)
        factor = max(factor, ratio)
        table.append(
            {
                "figure": key,
                "reference_GiB": real / GiB,
                "simulated_GiB": worst.peak / GiB,
                "activation_ratio": ratio,
            }
        )
    return factor, table


# -- the low-VRAM targets -------------------------------------------------------------------


def _check_family(sim: Sim, family: str) -> Sim:
    if sim.family != family:
        raise ValueError(f"a {sim.family} Sim cannot simulate {family}")
    return sim


def plan_peak(
    family: str,
    side: int,
    limit: int,
    factor: float,
    mode: str = "auto",
    controlnets: int = 0,
    sim: Sim | None = None,
) -> dict:
    """What the engine's memory plan does with `limit` bytes free (mode "auto"), or low-VRAM
    mode forced ("offload"), or a lone VAE decode ("decode"); and its calibrated peak.
    On `sim` (this family's, built with at least `controlnets`) or a new one."""
    sim = Sim(family, controlnets) if sim is None else _check_family(sim, family).using(controlnets)
    if mode == "decode":
        tile = memory_plan.decode_tile(family, side, side, limit)
        stages = [sim.decode_stage(side, tile)]
        vae = memory_plan.weight_bytes(family, "vae") * memory_plan.vae_upcast(family)
        estimate = memory_plan.decode_bytes(family, side, side, tile) + vae
        plan_text = f"decode tiles {tile}" if tile else "decode whole"
    else:
        plan = memory_plan.choose(family, side, side, limit, controlnets=controlnets)
        if mode == "offload":
            plan = memory_plan.MemoryPlan(
                "offload",
                plan.tiled_vae,
                plan.vae_tile_px,
                memory_plan.estimate(
                    family,
                    side,
                    side,
                    offload=True,
                    tile_px=plan.vae_tile_px,
                    controlnets=controlnets,
                ),
            )
        tile = plan.vae_tile_px if plan.tiled_vae else None
        if plan.low_vram:  # model CPU offload: one model (with its ControlNets) at a time
            stages = [sim.text_stage(), sim.unet_stage(side), sim.decode_stage(side, tile)]
        else:
            everything = sim.all_weights()
            stages = [
                sim.text_stage(everything),
                sim.unet_stage(side, resident=everything),
                sim.decode_stage(side, tile, everything),
            ]
        estimate = plan.estimate
        plan_text = plan.level + (f", tiles {tile}" if tile else "")
    worst = max(stages, key=lambda s: s.calibrated(factor))
    peak = worst.calibrated(factor)
    return {
        "family": family,
        "side": side,
        "controlnets": controlnets,
        "mode": mode,
        "limit_GiB": limit / GiB,
        "plan": plan_text,
        "stages": [{**asdict(s), "calibrated": s.calibrated(factor)} for s in stages],
        "peak_stage": worst.name,
        "peak_GiB": peak / GiB,
        "estimate_GiB": estimate / GiB,
        "fits": peak <= limit,
        "estimate_covers": estimate >= peak,
    }


TARGETS = [  # (family, side, limit GiB, mode, ControlNets): issue 7's, then the same forced
    ("sd1", 512, 4, "auto", 0),
    ("sd1", 512, 4, "offload", 0),
    ("sd1", 512, 4, "auto", 1),
    ("sdxl", 1024, 8, "auto", 0),
    ("sdxl", 1024, 8, "offload", 0),
    ("sdxl", 1024, 8, "auto", 1),
    ("sd1", 4096, 4, "decode", 0),
    ("sdxl", 4096, 4, "decode", 0),
]


# -- Flux.1 dev ------------------------------------------------------------------------------

FLUX_SIDE = 1024
FLUX_FORMATS = ("fp16", "fp8", "Q4_K", "nf4")
FLUX_MODES = {
    "none": "every model resident",
    "model": "model offload",
    "sequential": "sequential offload",
}
# (formats, offload mode, limit GiB): issue 12's targets.
FLUX_TARGETS = [(("Q4_K", "nf4"), "model", 12), (FLUX_FORMATS, "sequential", 8)]
FLUX_FREE_GIB = (24, 12, 8)
PLAN_MODE = {"full": "none", "tiled": "none", "offload": "model", "sequential": "sequential"}


def flux_rows(factor: float, formats=FLUX_FORMATS) -> tuple[list[dict], list[dict]]:
    """Per format: each offload mode's calibrated peak (stages run once per mode and tile),
    and the plan's choice at each free size with its peak and estimate."""
    from pipeline_sim import PipelineSim
    from sim_families import FLUX

    peaks, plans = [], []
    for key in formats:
        sim = PipelineSim(FLUX, key)
        runs: dict[tuple[str, int | None], list[Stage]] = {}

        def stages(mode: str, tile: int | None, sim=sim, runs=runs) -> list[Stage]:
            if (mode, tile) not in runs:
                runs[mode, tile] = sim.stages(FLUX_SIDE, mode, tile)
            return runs[mode, tile]

        for mode in FLUX_MODES:
            peaks.append(_flux_row(key, mode, stages(mode, None), factor))
        for free in FLUX_FREE_GIB:
            plan = memory_plan.choose(
                "flux", FLUX_SIDE, FLUX_SIDE, free * GiB, weights=weight_format(key)
            )
            tile = plan.vae_tile_px if plan.tiled_vae else None
            row = _flux_row(key, PLAN_MODE[plan.level], stages(PLAN_MODE[plan.level], tile), factor)
            peak = row["peak_GiB"] * GiB
            row.update(
                limit_GiB=free,
                plan=plan.level + (f", tiles {tile}" if tile else ""),
                estimate_GiB=plan.estimate / GiB,
                fits=peak <= free * GiB,
                estimate_covers=plan.estimate >= peak,
            )
            plans.append(row)
    return peaks, plans


def _flux_row(key: str, mode: str, stages: list[Stage], factor: float) -> dict:
    worst = max(stages, key=lambda s: s.calibrated(factor))
    return {
        "weights": key,
        "mode": mode,
        "stages": [{**asdict(s), "calibrated": s.calibrated(factor)} for s in stages],
        "peak_stage": worst.name,
        "peak_GiB": worst.calibrated(factor) / GiB,
    }


def flux_report(factor: float) -> tuple[dict, bool]:
    formats = FLUX_FORMATS
    if importlib.util.find_spec("gguf") is None:  # diffusers' GGUF support needs it
        print("  (no gguf package: the GGUF rows are left out; pip install gguf)")
        formats = tuple(k for k in formats if not k.startswith("Q"))
    peaks, plans = flux_rows(factor, formats)
    ok = True
    print(
        f"Flux.1 dev {FLUX_SIDE}x{FLUX_SIDE}, calibrated peak by transformer weights and offload:"
    )
    for r in peaks:
        print(
            f"  {r['weights']:<5} {FLUX_MODES[r['mode']]:<22} {r['peak_GiB']:6.2f} GiB ({r['peak_stage']})"
        )
        for s in r["stages"]:
            print(
                f"      {s['name']:<30} weights {s['weights'] / GiB:5.2f}  calibrated peak {s['calibrated'] / GiB:5.2f} GiB"
            )
    for target_formats, mode, limit in FLUX_TARGETS:
        for r in peaks:
            if r["weights"] in target_formats and r["mode"] == mode:
                fits = r["peak_GiB"] <= limit
                ok &= fits
                print(
                    f"  target: {r['weights']} with {FLUX_MODES[mode]} within {limit} GiB:"
                    f" {r['peak_GiB']:.2f} GiB -> {'fits' if fits else 'DOES NOT FIT'}"
                )
    print("Flux.1 dev: the memory plan's choice by free memory")
    for r in plans:
        ok &= r["fits"] and r["estimate_covers"]
        print(
            f"  {r['weights']:<5} {r['limit_GiB']:>3} GiB free: plan {r['plan']}; peak {r['peak_GiB']:.2f}"
            f" GiB ({r['peak_stage']}), plan estimate {r['estimate_GiB']:.2f} GiB ->"
            f" {'fits' if r['fits'] else 'DOES NOT FIT'}"
            + ("" if r["estimate_covers"] else ", ESTIMATE TOO LOW")
        )
    return {"side": FLUX_SIDE, "peaks": peaks, "plans": plans}, ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--only", choices=("sd", "flux"), help="only these families' targets")
    args = ap.parse_args(argv)

    factor, cal = calibrate()
    print("Calibration against the H200 reference (plain diffusers):")
    for row in cal:
        print(
            f"  {row['figure']:<16} reference {row['reference_GiB']:6.2f} GiB  simulated"
            f" {row['simulated_GiB']:6.2f} GiB  activation ratio {row['activation_ratio']:.2f}"
        )
    print(f"  calibration factor for activations: {factor:.2f}\n")

    results, ok = [], True
    targets = [] if args.only == "flux" else TARGETS
    for family, side, limit_gib, mode, nets in targets:
        r = plan_peak(family, side, limit_gib * GiB, factor, mode, nets)
        results.append(r)
        ok &= r["fits"] and r["estimate_covers"]
        what = {"decode": "decode", "offload": "txt2img, low-VRAM forced", "auto": "txt2img"}[mode]
        what += f" + {nets} ControlNet" if nets else ""
        print(
            f"{family} {what} {side}x{side} in {limit_gib} GiB: plan {r['plan']}; peak"
            f" {r['peak_GiB']:.2f} GiB ({r['peak_stage']}), plan estimate {r['estimate_GiB']:.2f}"
            f" GiB -> {'fits' if r['fits'] else 'DOES NOT FIT'}"
            + ("" if r["estimate_covers"] else ", ESTIMATE TOO LOW")
        )
        for s in r["stages"]:
            print(
                f"    {s['name']:<28} weights {s['weights'] / GiB:5.2f}  calibrated peak {s['calibrated'] / GiB:5.2f} GiB"
            )
    flux = None
    if args.only != "sd":
        print()
        flux, flux_ok = flux_report(factor)
        ok &= flux_ok
    if args.json:
        env = {"torch": torch.__version__}
        with contextlib.suppress(ImportError):
            import diffusers

            env["diffusers"] = diffusers.__version__
        payload = {
            "calibration_factor": factor,
            "calibration": cal,
            "targets": results,
            "flux": flux,
            "env": env,
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
