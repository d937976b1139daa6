"""Step hooks are kept by name (engine/hooks.py StepHooks), as diffusers' HookRegistry
keeps its hooks: registered again they are replaced in place, removed exactly."""

from __future__ import annotations

from dreamwire.backend.engine.hooks import StepHooks


def _hook(tag: str, calls: list[str]):
    def hook(ctx, pipe, step, total, tensors):
        calls.append(tag)

    return hook


def test_order_replace_and_remove():
    calls: list[str] = []
    hooks = StepHooks()
    hooks.register("a", _hook("a1", calls))
    hooks.register("b", _hook("b", calls))
    hooks.register("a", _hook("a2", calls))  # replaced, keeping its place before "b"
    for h in hooks:
        h(None, None, 0, 1, {})
    assert calls == ["a2", "b"]
    assert hooks.names() == ["a", "b"]
    hooks.remove("a")
    hooks.remove("never registered")  # removing what is not there is not an error
    assert hooks.names() == ["b"]


def test_a_hook_may_remove_hooks_while_they_run():
    hooks = StepHooks()
    calls: list[str] = []

    def remover(ctx, pipe, step, total, tensors):
        calls.append("remover")
        hooks.remove("other")

    hooks.register("remover", remover)
    hooks.register("other", _hook("other", calls))
    for h in hooks:  # iterates a snapshot: this step still runs "other"
        h(None, None, 0, 1, {})
    assert calls == ["remover", "other"] and hooks.names() == ["remover"]
