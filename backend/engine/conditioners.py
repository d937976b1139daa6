"""The job's conditioners as the engine drives them: resolved, then attached around the job
and around each pass, restored exactly in reverse order.

The pipeline of a pass is chosen here, once, from what the attached conditioners add: a
`controlnet` component (diffusers' ControlNet pipelines take one) runs the family's
ControlNet pipeline for the mode, a part asking for a control model (a Flux Control LoRA)
the family's control-model pipeline, anything else the plain one. Several kinds combine in one
pass (ControlNet + T2I-Adapter + IP-Adapter + LoRA): the adapters hook the UNet, LoRA has
patched its weights, the ControlNet stack is a pipeline component.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import pipelines
from .hooks import CallHook, Conditioner, JobContext, PassPlan


@contextmanager
def attached_to_job(ctx: JobContext, conditioners: Sequence[Conditioner]) -> Iterator[None]:
    """Every conditioner resolves first (all refusals before any weight changes), then those
    with something to do attach for the job; on exit each restores, last attached first."""
    for conditioner in conditioners:
        resolved = conditioner.resolve(ctx)
        if resolved is not None:
            ctx.resolved[conditioner] = resolved
    with ExitStack() as stack:
        for conditioner, resolved in ctx.resolved.items():
            stack.enter_context(conditioner.attach_job(ctx, resolved))
        yield


@contextmanager
def attached_to_pass(
    ctx: JobContext, mode: str, conditioners: Sequence[Conditioner]
) -> Iterator[PassPlan]:
    """The pass's plan with every resolved conditioner attached and its step hook registered
    by name; on exit the hooks are removed and each conditioner restores what it changed."""
    components: dict[str, Any] = {}
    call_kwargs: dict[str, Any] = {}
    prompt_tokens: list[Any] = []
    around_call: list[CallHook] = []
    control_model = False
    with ExitStack() as stack:
        for conditioner in conditioners:
            if conditioner not in ctx.resolved:
                continue
            part = stack.enter_context(conditioner.attach(ctx, ctx.resolved[conditioner], mode))
            if part is None:
                continue
            _merge(components, part.components, conditioner.name)
            _merge(call_kwargs, part.call_kwargs, conditioner.name)
            if part.prompt_tokens is not None:
                prompt_tokens.append(part.prompt_tokens)
            if part.step_hook is not None:
                ctx.step_hooks.register(conditioner.name, part.step_hook)
                stack.callback(ctx.step_hooks.remove, conditioner.name)
            if part.around_call is not None:
                around_call.append(part.around_call)
            control_model = control_model or part.control_model
        controlnet = "controlnet" in components
        pipe_cls = pipelines.pipeline_class(
            ctx.model.family,
            mode,
            controlnet=controlnet,
            arch=ctx.model.arch,
            control_model=control_model,
        )
        yield PassPlan(
            pipe_cls, components, call_kwargs, prompt_tokens=prompt_tokens, around_call=around_call
        )


def _merge(into: dict[str, Any], part: dict[str, Any], name: str) -> None:
    """Two conditioners setting one pipeline argument would silently override each other."""
    clash = sorted(set(into) & set(part))
    if clash:
        raise DreamwireError(
            ErrorCode.INTERNAL, f"conditioner {name} sets {', '.join(clash)} a second time"
        )
    into.update(part)
