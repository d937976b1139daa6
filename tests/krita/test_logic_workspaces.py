"""The docker's plain decisions: workspaces, what the connection state reads as, the
Krita actions, the upscaler it starts with, and the address it looks for a backend at."""

from __future__ import annotations

import argparse

from dreamwire_krita.logic import actions, connection, settings, workspaces
from dreamwire_krita.logic.actions import Command
from dreamwire_krita.logic.upscale import default_upscaler
from dreamwire_krita.logic.workspaces import Workspace

from dreamwire.backend.cli import serve
from dreamwire.shared.refine_upscaler import KAD_QUALITY, KAD_SMALL


def test_workspace_setting_round_trips_and_unknown_is_generate():
    for ws in Workspace:
        assert workspaces.from_setting(ws.value) is ws
        assert workspaces.from_setting(f" {ws.value.upper()} ") is ws
    assert workspaces.from_setting("") is Workspace.GENERATE
    assert workspaces.from_setting("animation") is Workspace.GENERATE
    assert settings.Settings().workspace == Workspace.GENERATE.value


def test_live_runs_only_in_its_own_workspace():
    assert not workspaces.live_stays_on(Workspace.LIVE, Workspace.GENERATE)
    assert not workspaces.live_stays_on(Workspace.LIVE, Workspace.UPSCALE)
    assert workspaces.live_stays_on(Workspace.LIVE, Workspace.LIVE)
    assert workspaces.live_stays_on(Workspace.GENERATE, Workspace.UPSCALE)


def test_default_address_is_where_dreamwire_serve_listens():
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--models", "m", "--out", "o"])
    assert settings.Settings().address == args.bind == settings.DEFAULT_ADDRESS


def test_never_connected_is_not_lost():
    addr = "tcp://127.0.0.1:5790"
    first = connection.connection_view("lost", ever_connected=False, address=addr)
    assert first.label == "Not connected" and first.level == "warning"
    assert addr in first.message and "dreamwire serve" in first.message
    later = connection.connection_view("lost", ever_connected=True, address=addr)
    assert later.label == "Lost" and later.level == "error"
    assert connection.connection_view("connected", True, addr).label == "Connected"
    assert connection.connection_view("connecting", False, addr).label == "Connecting"


def test_upscale_starts_with_the_best_model_the_backend_lists():
    plain = ["Lanczos", "Nearest"]
    assert default_upscaler(plain) == "Lanczos"
    # Krita AI Diffusion's quality model for 2x and more, its small one for 1.5x.
    both = [*plain, "RealESRGAN_x4plus.pth", f"{KAD_SMALL}.safetensors", f"{KAD_QUALITY}.pth"]
    assert default_upscaler(both, 2.0) == f"{KAD_QUALITY}.pth"
    assert default_upscaler(both, 1.5) == f"{KAD_SMALL}.safetensors"
    # Neither of its models: the first model listed, never a resize.
    assert default_upscaler([*plain, "RealESRGAN_x4plus.pth"], 2.0) == "RealESRGAN_x4plus.pth"


def test_actions_have_stable_ids_and_generate_follows_the_workspace():
    assert [a.command for a in actions.ACTIONS] == list(Command)
    assert all(a.id.startswith("dreamwire_") for a in actions.ACTIONS)
    assert actions.generate_action(Workspace.UPSCALE) == "upscale"
    assert actions.generate_action(Workspace.GENERATE) == "generate"
    assert actions.generate_action(Workspace.LIVE) == "generate"
    for ws in Workspace:
        assert actions.live_workspace_for(Command.TOGGLE_LIVE, ws) is Workspace.LIVE
        assert actions.live_workspace_for(Command.CANCEL, ws) is ws


def test_masked_content_is_kept_per_workspace_and_survives_settings():
    from dreamwire_krita.logic.masked_content import MaskedContent

    mc = MaskedContent.from_json("")
    assert {mc.get(ws) for ws in workspaces.Workspace} == {"original"}
    assert mc.set(workspaces.Workspace.GENERATE, "latent noise")
    assert mc.set(workspaces.Workspace.LIVE, "fill")
    assert not mc.set(workspaces.Workspace.LIVE, "blurry")  # not an A1111 choice
    back = MaskedContent.from_json(mc.to_json())
    assert back.get(workspaces.Workspace.GENERATE) == "latent noise"
    assert back.get(workspaces.Workspace.LIVE) == "fill"
    assert back.get(workspaces.Workspace.UPSCALE) == "original"
    # Settings from before: the panel's one choice was Generate's.
    old = MaskedContent.from_json("", legacy="latent nothing")
    assert old.get(workspaces.Workspace.GENERATE) == "latent nothing"
    assert old.get(workspaces.Workspace.LIVE) == "original"
    for bad in ("{", "[1]", '{"generate": "nonsense"}'):
        assert MaskedContent.from_json(bad).get(workspaces.Workspace.GENERATE) == "original"
