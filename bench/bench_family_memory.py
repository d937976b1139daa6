"""Peak GPU memory of the issue 13 families at 1024x1024, on fake tensors, against the
memory plan's estimates and the family specs' MemoryFigures.

    python bench/bench_family_memory.py [--json out.json] [--factor 1.55] [--only ARCH...]

For SD3.5 Large and Medium, Qwen-Image, Z-Image Turbo and Flux.2 Klein 4B (and Flux.1 dev,
to check it against bench_lowvram.py's Flux figures), bench/pipeline_sim.py
builds the real architectures from the catalog configs and runs each stage of a txt2img on
fake tensors (bench/fake_gpu.py counts every allocation), with the transformer stored in
16 bits, fp8 (layerwise casting) and GGUF Q4_0. Q4_0, not Q4_K: ggml's K-quants need rows of
256 weights and SD3.5 Large is 2432 wide, so its published GGUF files are Q4_0/Q5_0/Q8_0.

Activations are scaled by bench_lowvram's calibration against the H200 reference (its SD1.5
simulation, run first unless --factor gives the factor). Modes: every model resident, model
CPU offload, sequential CPU offload. Only "model" and "sequential" are run: a stage's peak
with every model resident is its peak with its own model plus the other models' weights
(the count of what a stage allocates does not depend on what else is held). Text encoders
and the VAE do not depend on the transformer's format, so they run once per family.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline_sim as ps  # noqa: E402
import sim_families as sf  # noqa: E402
from fake_gpu import Stage  # noqa: E402

from dreamwire.backend.engine import memory_plan  # noqa: E402
from dreamwire.backend.families import spec_for  # noqa: E402
from dreamwire.backend.library.weight_formats import weight_format  # noqa: E402

GiB = 2**30
SIDE = 1024
FORMATS = ("fp16", "fp8", "Q4_0")
NEW = ("sd3.5-large", "sd3.5-medium", "qwen-image", "zimage-turbo", "flux2-klein-4b")


@dataclass
class Row:
    arch: str
    weights: str
    mode: str  # "none" | "model" | "sequential"
    peak_GiB: float  # calibrated
    peak_stage: str
    estimate_GiB: float  # memory_plan.estimate for the family spec, same mode and format


def plan_estimate(fam: sf.SimFamily, side: int, mode: str, weights: str) -> int:
    """memory_plan.estimate for a txt2img of `fam` in a Row's mode and format."""
    return memory_plan.estimate(
        fam.key,
        side,
        side,
        offload=mode == "model",
        sequential=mode == "sequential",
        weights=weight_format(weights),
        variant=fam.variant,
    )


def peaks(fam: sf.SimFamily, factor: float, formats=FORMATS) -> tuple[list[Row], dict]:
    """Each format's calibrated peak per mode, and the transformer's activations."""
    base = ps.PipelineSim(fam, "fp16")
    shared = {
        mode: [
            *(base.text_stage(i, mode) for i in range(len(fam.texts))),
            base.decode_stage(SIDE, mode),
        ]
        for mode in ("model", "sequential")
    }
    others = sum(s.weights for s in shared["model"])  # text encoders + VAE
    rows, act = [], {}
    for key in formats:
        sim = base if key == "fp16" else ps.PipelineSim(fam, key)
        den = {mode: sim.transformer_stage(SIDE, mode) for mode in ("model", "sequential")}
        act[key] = den["model"].activations
        all_weights = others + den["model"].weights
        by_mode = {
            "model": [*shared["model"], den["model"]],
            "sequential": [*shared["sequential"], den["sequential"]],
        }
        by_mode["none"] = [
            Stage(s.name, all_weights, s.peak - s.weights + all_weights) for s in by_mode["model"]
        ]
        for mode in ps.MODES:
            worst = max(by_mode[mode], key=lambda s: s.calibrated(factor))
            est = plan_estimate(fam, SIDE, mode, key)
            rows.append(
                Row(fam.arch, key, mode, worst.calibrated(factor) / GiB, worst.name, est / GiB)
            )
        print(
            f"  {fam.label} {key}: "
            + ", ".join(f"{r.mode} {r.peak_GiB:.2f} ({r.estimate_GiB:.2f})" for r in rows[-3:]),
            flush=True,
        )
    stages = {m: [asdict(s) for s in v] for m, v in shared.items()}
    return rows, {"shared_stages": stages, "transformer_activations": act}


def compare(fam: sf.SimFamily, fig: ps.Figures, act_bytes: int, factor: float) -> dict:
    """The spec's MemoryFigures beside the sim's, with each one's ratio (spec / sim)."""
    m = spec_for(fam.key).memory_for(fam.variant)
    samples = 2 if fam.cfg_batch else 1
    per_px = act_bytes / (SIDE // 8) ** 2 / samples
    pairs = {
        "denoiser_params_m": (m.denoiser_params_m, fig.transformer_m),
        "text_params_m": (m.text_params_m, fig.text_total_m),
        "text_encoders_params_m": (m.text_encoders_params_m, tuple(fig.text_m.values())),
        "vae_params_m": (m.vae_params_m, fig.vae_m),
        "cast_share": (m.cast_share, fig.cast_share),
        "largest_layer_params_m": (m.largest_layer_params_m, fig.largest_layer_m),
        "largest_module_params_m": (m.largest_module_params_m, fig.largest_module_m),
        "act_KiB_per_latent_px (calibrated)": (
            m.denoiser_act_per_latent_px / 1024,
            per_px * factor / 1024,
        ),
        "cfg doubles the batch": (m.cfg_batch, fam.cfg_batch),
    }
    return {k: {"spec": a, "sim": b} for k, (a, b) in pairs.items()}


def reestimate(path: Path) -> None:
    """The estimates of a recorded run's rows from the specs as they are now: the peaks are
    the simulation's and do not move when the plan's figures do."""
    out = json.loads(path.read_text())
    for arch, rec in out["families"].items():
        fam = sf.FAMILIES[arch]
        for row in rec["rows"]:
            est = plan_estimate(fam, out["side"], row["mode"], row["weights"])
            row["estimate_now_GiB"] = est / GiB
            print(
                f"{fam.label} {row['weights']} {row['mode']}: peak {row['peak_GiB']:.2f}"
                f" estimate {row['estimate_GiB']:.2f} -> {row['estimate_now_GiB']:.2f}"
            )
    path.write_text(json.dumps(out, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--factor", type=float, help="calibration factor (default: calibrate)")
    ap.add_argument("--only", nargs="+", choices=sorted(sf.FAMILIES), default=list(NEW))
    ap.add_argument(
        "--reestimate",
        action="store_true",
        help="only recompute --json's estimates from the specs (no simulation)",
    )
    a = ap.parse_args(argv)
    if a.reestimate:
        reestimate(a.json)
        return 0
    factor = a.factor
    if factor is None:
        from bench_lowvram import calibrate

        factor = calibrate()[0]
    print(f"calibration factor {factor:.2f}", flush=True)
    out = {"side": SIDE, "factor": factor, "families": {}}
    for arch in a.only:
        fam = sf.FAMILIES[arch]
        fig = ps.figures(fam)
        print(f"{fam.label}: {fig}", flush=True)
        rows, extra = peaks(fam, factor)
        cmp = compare(fam, fig, extra["transformer_activations"]["fp16"], factor)
        for k, v in cmp.items():
            print(f"    {k:<36} spec {v['spec']}  sim {v['sim']}")
        out["families"][arch] = {
            "label": fam.label,
            "figures": asdict(fig),
            "rows": [asdict(r) for r in rows],
            "spec_vs_sim": cmp,
            **extra,
        }
        if a.json:  # after each family: a long run keeps what it has
            a.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
