"""img2img, inpaint, Hires.fix and SD upscale sample the sigmas A1111 samples.

A1111's setup_img2img_steps, restated here: t_enc = int(min(strength, 0.999) * steps); the
sampler runs t_enc + 1 steps over sigmas[steps - t_enc - 1:] of a `steps` schedule. With
fixed steps (every Hires.fix pass, which passes its Hires steps or the job's) the schedule is
built for int(steps / min(strength, 0.999)) steps and exactly `steps` run. The sigmas are
checked against k-diffusion's Karras formula, the schedule "Euler Karras" samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.backend.engine import scheduling
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import HiresFix, Job, Upscale

BASE = dict(prompt="moss", sampler="Euler Karras", cfg=5.0, width=32, height=32, seed=7)


def a1111_rule(steps: int, strength: float, fixed: bool) -> tuple[int, int]:
    """(schedule length, index of the first sigma sampled)."""
    denoise = min(strength, 0.999)
    if fixed:
        length = int(steps / denoise)
        return length, length - steps
    t_enc = int(denoise * steps)
    return steps, steps - t_enc - 1


def karras(n: int, smin: float, smax: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    out = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([out, torch.zeros(1, dtype=torch.float64)])


class Recorder:
    """Keeps every scheduler the engine makes and counts its steps (a spy: the real
    scheduler runs)."""

    def __init__(self, monkeypatch):
        self.passes: list = []
        original = scheduling.make

        def make(family, sampler, model_scheduler):
            sched = original(family, sampler, model_scheduler)
            self.passes.append([sched, 0])
            entry = self.passes[-1]
            step = sched.step

            def counted(*args, **kwargs):
                entry[1] += 1
                return step(*args, **kwargs)

            sched.step = counted
            return sched

        monkeypatch.setattr(scheduling, "make", make)

    def sampled(self, index: int) -> tuple[torch.Tensor, int]:
        """The sigmas pass `index` walked (its first to the final one) and its step count."""
        sched, steps = self.passes[index]
        start = sched.begin_index or 0
        return sched.sigmas[start:].double(), steps


def _model_range(engine) -> tuple[float, float]:
    ac = engine.load("tiny-sd1").components["scheduler"].alphas_cumprod.double()
    sigmas = ((1 - ac) / ac) ** 0.5
    return float(sigmas[0]), float(sigmas[-1])


def _expect(engine, steps: int, strength: float, fixed: bool = False) -> torch.Tensor:
    length, start = a1111_rule(steps, strength, fixed)
    return karras(length, *_model_range(engine))[start:]


def _check(recorder: Recorder, index: int, expect: torch.Tensor) -> None:
    got, steps = recorder.sampled(index)
    assert steps == len(expect) - 1
    assert got.shape == expect.shape, (got, expect)
    assert torch.allclose(got, expect, rtol=2e-6, atol=1e-7), (got, expect)


@pytest.mark.parametrize("steps,strength", [(5, 0.5), (4, 0.3)])
def test_img2img_runs_a1111s_steps(engine, init_image, monkeypatch, steps, strength):
    rec = Recorder(monkeypatch)
    picture = init_image[:32, :32]
    out = engine.run(Job(**BASE, steps=steps, init_image=picture, strength=strength))
    expect = _expect(engine, steps, strength)
    # 5 at 0.5: 3 steps (diffusers' own img2img would run 2); 4 at 0.3: 2 steps (not 1).
    assert len(expect) - 1 == int(steps * strength) + 1
    _check(rec, 0, expect)
    # The infotext holds what A1111 needs to run the same: the steps and the strength.
    info = parse_infotext(out.images[0].infotext)
    assert (info.steps, info.denoising_strength) == (steps, strength)


def test_inpaint_runs_a1111s_steps(engine, init_image, mask, monkeypatch):
    rec = Recorder(monkeypatch)
    job = Job(**BASE, steps=4, init_image=init_image[:32, :32], mask=mask[:32, :32], strength=0.6)
    engine.run(job)
    _check(rec, 0, _expect(engine, 4, 0.6))  # 3 steps from the second sigma


@pytest.mark.parametrize("hires_steps", [3, 0])
def test_hires_pass_runs_all_its_steps_over_a_stretched_schedule(engine, monkeypatch, hires_steps):
    rec = Recorder(monkeypatch)
    hires = HiresFix(scale=1.5, denoise=0.4, steps=hires_steps, upscaler="Latent")
    out = engine.run(Job(**BASE, steps=2, hires=hires))
    _check(rec, 0, karras(2, *_model_range(engine)))  # the first pass: txt2img
    run = hires_steps or 2  # Hires steps 0: the job's steps, still passed as fixed steps
    expect = _expect(engine, run, 0.4, fixed=True)
    assert len(expect) - 1 == run  # diffusers' own img2img would run int(run * 0.4)
    _check(rec, 1, expect)
    info = parse_infotext(out.images[0].infotext)
    assert info.hires_steps == (hires_steps or None) and info.denoising_strength == 0.4


def test_sd_upscale_tiles_run_a1111s_img2img_steps(engine, monkeypatch):
    rec = Recorder(monkeypatch)
    picture = np.full((64, 64, 3), 120, np.uint8)
    up = Upscale(scale=1.0, upscaler="Lanczos", tile=64, overlap=0)
    engine.run(Job(**BASE, steps=3, init_image=picture, upscale=up, strength=0.5))
    assert rec.passes
    for index in range(len(rec.passes)):  # each tile: int(0.5 * 3) + 1 = 2 steps of 3
        _check(rec, index, _expect(engine, 3, 0.5))
