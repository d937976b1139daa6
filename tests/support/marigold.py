"""Names of the tiny Marigold folders and a stand-in SD pipeline folder for scan tests."""

from __future__ import annotations

import json
from pathlib import Path

APPEARANCE = "tiny-marigold-iid-appearance"
LIGHTING = "tiny-marigold-iid-lighting"
NORMALS = "tiny-marigold-normals"


def write_sd_folder(folder: Path) -> Path:
    """A diffusers SD1.x pipeline folder as far as the scan reads it (its configs)."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "x"]})
    )
    unet = {"block_out_channels": [320, 640], "in_channels": 4, "cross_attention_dim": 768}
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    return folder
