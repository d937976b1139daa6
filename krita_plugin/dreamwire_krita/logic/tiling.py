"""Seamless tiling tied to Krita's wrap-around mode (Krita AI Diffusion #956).

An artist painting a tile turns on wrap-around (W) to see it repeat; then every job the
docker sends is seamless without another switch, and the docker's toggle does the same
with wrap-around off. The backend makes a job seamless by circular padding of the model's
convolutions: the picture it wraps is the job's own, so a seamless job must read and
generate the whole canvas (the tile), never a window of it; its layer still lands on the
selection only.
"""

from __future__ import annotations

from dataclasses import replace

from .geometry import MIN_SIDE, SIZE_STEP, Rect
from .regions import InpaintInputs, Plan, PlanError

# Krita's checkable action behind View > Wrap Around Mode.
WRAP_AROUND_ACTION = "wrap_around_mode"
# What a seamless job tiles along: the canvas repeats both ways in wrap-around mode.
AXES = "both"


def seamless_axes(toggle: bool, wrap_around: bool) -> str:
    """The job's `seamless` field: the docker's toggle, or on whenever wrap-around is."""
    return AXES if toggle or wrap_around else "none"


def tile_plan(plan: Plan, canvas: Rect) -> Plan:
    """`plan` made to read and generate the whole canvas (the tile); the layer lands where
    the plan put it, inside the canvas."""
    if canvas.w % SIZE_STEP or canvas.h % SIZE_STEP or min(canvas.w, canvas.h) < MIN_SIDE:
        raise PlanError(
            f"Seamless tiling needs a canvas whose sides are multiples of {SIZE_STEP} px "
            f"and at least {MIN_SIDE} px (this one is {canvas.w}x{canvas.h}): resize the "
            "canvas, or switch tiling (and wrap-around) off."
        )
    target = plan.target.intersect(canvas)
    if target.empty():
        raise PlanError("The selection lies outside the tile.")
    return replace(plan, region=canvas, target=target)


def check_inputs(inputs: InpaintInputs) -> None:
    """A tile is inpainted as a whole: there is nothing beyond its edges to outpaint."""
    if inputs.outpaint:
        raise PlanError(
            "Seamless inpaint needs the whole tile painted: paint or fill the empty part, "
            "or switch tiling (and wrap-around) off."
        )
