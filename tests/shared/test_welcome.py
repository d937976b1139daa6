"""The welcome's typed fields (shared/events.py Welcome): every key PROTOCOL.md documents
is a field, read defensively, so hosts never dig in `extra` or trip over a bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dreamwire.shared import families
from dreamwire.shared.events import Welcome, WorkerStatus

GOOD = {
    "protocol": 1,
    "server_version": "0.1.0",
    "server_id": "abc",
    "priorities": ["live", "interactive", "normal", "batch"],
    "upscalers": ["Lanczos", "Nearest", "4x-UltraSharp"],
    "model_families": {"juggernaut": "sdxl"},
    "default_model": "juggernaut",
    "control_types": {"sdxl": {"depth": "union"}},
    "control_missing": {"sdxl": {"tile": "add a tile model"}},
    "model_missing": {"flux1-dev": "Flux needs a T5 text encoder"},
    "model_weights": {"flux1-dev-Q4_K_S": "GGUF Q4_K", "bad": 4},
    "model_modes": {"flux1-kontext": ["txt2img", "edit"]},
    "lora_families": {"detail": ["sd1", "sd2"], "ink": ["sdxl", 3], "odd": "sdxl"},
    "model_defaults": {
        "flux1-schnell": {"steps": 4, "cfg": 1.0, "sampler": "Euler", "distilled_cfg": None},
        "broken": {"steps": "many"},
        "worse": 4,
    },
    "dtype": "float16",
}


def test_documented_keys_are_fields():
    w = Welcome.from_body(GOOD)
    assert w.priorities[0] == "live" and w.upscalers[-1] == "4x-UltraSharp"
    assert w.model_families == {"juggernaut": "sdxl"} and w.default_model == "juggernaut"
    assert w.control_types["sdxl"]["depth"] == "union"
    assert w.control_missing["sdxl"]["tile"] == "add a tile model"
    assert w.model_missing == {"flux1-dev": "Flux needs a T5 text encoder"}
    assert w.model_modes == {"flux1-kontext": ["txt2img", "edit"]}
    # A non-list entry is dropped (that LoRA: unknown family), a non-text family too.
    assert w.lora_families == {"detail": ["sd1", "sd2"], "ink": ["sdxl"]}
    assert w.model_weights == {"flux1-dev-Q4_K_S": "GGUF Q4_K"}  # a non-text value dropped
    # A damaged entry is dropped: its model keeps its family's defaults.
    assert w.model_defaults == {"flux1-schnell": families.GenerationDefaults(4, 1.0, "Euler")}
    assert w.extra == {"dtype": "float16"}  # undocumented keys stay in extra


def test_every_key_protocol_md_lists_is_a_field():
    page = (Path(__file__).parents[2] / "shared" / "PROTOCOL.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `welcome` |"))
    documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[4])) - {"live", "interactive"}
    documented -= {"Lanczos", "Nearest", *families.FAMILIES}
    fields = set(Welcome.__dataclass_fields__) - {"extra"}
    assert documented <= fields, documented - fields


@pytest.mark.parametrize(
    "bad",
    [
        {"priorities": "live"},
        {"upscalers": [1, None, {"a": 1}]},
        {"model_families": ["sdxl"]},
        {"default_model": None},
        {"control_types": {"sd1": "depth"}},
        {"control_missing": 7},
        {"model_missing": ["flux1-dev"]},
        {"model_modes": ["edit"]},
        {"model_modes": {"flux1-kontext": "edit"}},
        {"lora_families": ["sdxl"]},
        {"model_defaults": ["flux1-schnell"]},
        {"model_defaults": {"flux1-schnell": {"cfg": [1]}}},
        {"workers": {"name": "local"}},
        {"workers": [{"device": "cpu"}, "actor-0"]},
    ],
)
def test_bad_values_become_empty_defaults(bad):
    w = Welcome.from_body({"protocol": 1, **bad})
    key = next(iter(bad))
    assert not getattr(w, key)


def test_workers_are_typed_and_a_damaged_entry_is_dropped():
    body = {
        "protocol": 1,
        "workers": [
            {
                "name": "actor-0",
                "device": "cuda:0",
                "models": ["tiny-sd1", 3],
                "pid": 41,
                "job": "j",
                "ram_free": 2**34,
                "vram_free": 2**33,
            },
            {"name": "actor-1", "device": None, "pid": True, "ram_free": -1, "vram_free": "8G"},
            {"device": "cpu"},
        ],
    }
    w = Welcome.from_body(body)
    assert w.workers == [
        WorkerStatus("actor-0", "cuda:0", ["tiny-sd1"], 41, "j", 2**34, 2**33),
        WorkerStatus("actor-1"),
    ]
