"""The welcome's control types per model family: what a unit naming no model would find."""

from __future__ import annotations

import json

from dreamwire.shared.job import CONTROL_TYPES


def test_capabilities_list_the_control_types_each_family_can_run(engine):
    caps = json.loads(json.dumps(engine.capabilities()))  # the wire is JSON
    served, missing = caps["control_types"], caps["control_missing"]
    assert set(served) == set(caps["model_families"].values()) == {"sd1", "sdxl"}
    # The tiny library has a ControlNet/adapter of every type for SD1, an IP-Adapter with
    # its encoder, and the T2I colour adapter.
    assert set(served["sd1"]) == set(CONTROL_TYPES) and missing["sd1"] == {}
    assert served["sd1"]["color"] == "t2iadapter_color_sd14v1"
    assert served["sd1"]["tile"] == "control_v11f1e_sd15_tile"
    assert served["sd1"]["ip-adapter"].endswith("+ tiny-clip-vit-h")
    # SDXL: a dedicated ControlNet wins, the Union ProMax model covers its modes, the
    # T2I sketch adapter serves scribble; types no SDXL file has are missing, with a reason.
    assert served["sdxl"]["depth"] == "diffusers_xl_depth_full"
    assert served["sdxl"]["tile"] == served["sdxl"]["canny"] == "controlnet-union-sdxl-1.0_promax"
    assert served["sdxl"]["ip-adapter"] == "ip-adapter_sdxl + tiny-clip-vit-bigg"
    # Style and Composition run the same IP-Adapter files: served wherever Reference is.
    for family in ("sd1", "sdxl"):
        for kind in ("ip-adapter-style", "ip-adapter-composition"):
            assert served[family][kind] == served[family]["ip-adapter"]
    assert served["sd1"]["mediapipe_face"] == "control_v2p_sd15_mediapipe_face"
    assert set(missing["sdxl"]) == {"shuffle", "ip2p", "color", "mediapipe_face"}
    assert "no mediapipe_face ControlNet" in missing["sdxl"]["mediapipe_face"]
    assert "ControlNet folders" in missing["sdxl"]["color"]
    assert set(served["sdxl"]) | set(missing["sdxl"]) == set(CONTROL_TYPES)


def test_capabilities_say_which_file_is_missing(tmp_path, tiny_models):
    """A library without CLIP vision encoders, ControlNets for SD1 only: IP-Adapter is not
    offered (the reason names the encoder), SDXL types name an example file."""
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.library import ModelLibrary

    src = tiny_models / "models"
    models = tmp_path / "models"
    (models / "ControlNet").mkdir(parents=True)
    (models / "Stable-diffusion").symlink_to(src / "Stable-diffusion")
    for name in ("control_v11p_sd15_canny", "ip-adapter_sd15"):
        (models / "ControlNet" / f"{name}.safetensors").symlink_to(
            src / "ControlNet" / f"{name}.safetensors"
        )
    library = ModelLibrary([tmp_path])
    caps: dict = {}
    for conditioner in engine_extensions():  # as the engine gathers them for the welcome
        caps.update(conditioner.capabilities(library))
    assert caps["control_types"]["sd1"] == {"canny": "control_v11p_sd15_canny"}
    why = caps["control_missing"]["sd1"]
    assert "clip_vision" in why["ip-adapter"] and "image encoder" in why["ip-adapter"]
    assert why["ip-adapter-style"] == why["ip-adapter-composition"] == why["ip-adapter"]
    assert "control_v11f1e_sd15_tile.safetensors" in why["tile"]
    assert "controlnet-union-sdxl-1.0_promax" in caps["control_missing"]["sdxl"]["depth"]
