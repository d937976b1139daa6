"""Peak memory of `dreamwire models merge` (streamed, tensor by tensor) against merging as
A1111 does (both state dicts loaded whole, merged in memory, saved), on the same two files,
each approach in its own child process on the same machine.

    .venv/bin/python bench/bench_merge.py [--gib 1.0] [--tensor-mib 8]

Writes two synthetic checkpoints of --gib GiB each (float32 tensors under
`model.diffusion_model.*`, so every key merges), runs a weighted-sum merge both ways and
prints each child's peak RSS, the ratio streamed / whole-file, the peak above the bare
interpreter (torch imported), and the seconds; outputs are compared bit for bit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path
import torch
mode, a, b, out = sys.argv[1:5]
t0 = time.perf_counter()
if mode == "bare":
    pass
elif mode == "compare":
    from safetensors import safe_open
    with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
        same = set(fa.keys()) == set(fb.keys()) and all(
            torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())
    print(json.dumps({"equal": same}))
    sys.exit(0)
elif mode == "streamed":
    from dreamwire.backend.library.merge import Checkpoint, MergeMethod, MergeRequest, merge
    merge(MergeRequest(Checkpoint("a", Path(a)), Checkpoint("b", Path(b)), None,
                       MergeMethod.WEIGHTED_SUM, 0.3, metadata=False, custom_name="streamed"),
          out_dir=Path(out))
else:  # A1111's run_modelmerger: read_state_dict both, merge in place, save_file
    from safetensors.torch import load_file, save_file
    theta_1 = load_file(b)
    theta_0 = load_file(a)
    for key in theta_0.keys():
        if "model" in key and key in theta_1:
            theta_0[key] = ((1 - 0.3) * theta_0[key]) + (0.3 * theta_1[key])
    del theta_1
    save_file(theta_0, str(Path(out) / "whole.safetensors"))
# VmHWM: this process's own peak (ru_maxrss can carry a figure over from before exec).
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"maxrss_kib": hwm, "seconds": time.perf_counter() - t0}))
"""


def write_checkpoint(path: Path, gib: float, tensor_mib: int, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    n = max(1, int(gib * 1024 / tensor_mib))
    g = torch.Generator().manual_seed(seed)
    per = tensor_mib * 1024 * 1024 // 4
    sd = {
        f"model.diffusion_model.block.{i}.weight": torch.randn(per, generator=g) for i in range(n)
    }
    save_file(sd, str(path))


def child(mode: str, a: Path, b: Path, out: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(a), str(b), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--tensor-mib", type=int, default=8)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dw-bench-merge-") as tmp:
        tmp = Path(tmp)
        a, b = tmp / "a.safetensors", tmp / "b.safetensors"
        write_checkpoint(a, args.gib, args.tensor_mib, 1)
        write_checkpoint(b, args.gib, args.tensor_mib, 2)
        size = a.stat().st_size + b.stat().st_size
        bare = child("bare", a, b, tmp)
        streamed = child("streamed", a, b, tmp)
        whole = child("whole", a, b, tmp)
        equal = child("compare", tmp / "streamed.safetensors", tmp / "whole.safetensors", tmp)
    mib = 1024.0
    row = {
        "inputs_mib": round(size / 2**20),
        "bare_mib": round(bare["maxrss_kib"] / mib),
        "streamed_peak_mib": round(streamed["maxrss_kib"] / mib),
        "whole_peak_mib": round(whole["maxrss_kib"] / mib),
        "streamed_above_bare_mib": round((streamed["maxrss_kib"] - bare["maxrss_kib"]) / mib),
        "whole_above_bare_mib": round((whole["maxrss_kib"] - bare["maxrss_kib"]) / mib),
        "ratio_streamed_to_whole": round(streamed["maxrss_kib"] / whole["maxrss_kib"], 3),
        "streamed_s": round(streamed["seconds"], 2),
        "whole_s": round(whole["seconds"], 2),
        "outputs_equal": equal["equal"],
    }
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
