"""Tiny random-weight Marigold models, written as prs-eth's diffusers folders.

`build(root)` writes `ROOT/models/Marigold/<name>/` for each of `TINY`: the folders
diffusers' `save_pretrained` writes for MarigoldIntrinsicsPipeline and
MarigoldNormalsPipeline (model_index.json with the pipeline's config, unet/, vae/,
scheduler/, text_encoder/, tokenizer/), so the library and the engine read them exactly as
an artist's downloads. The configs are the real v1-1 models' scaled down: Stable Diffusion
2's UNet layout (linear projections, cross-attention over an OpenCLIP-style text encoder)
with the image latent concatenated to the prediction latents at the input, a DDIM
v-prediction scheduler with trailing timesteps, and `target_properties` as prs-eth's
model_index.json files state them; the tokenizer is the CLIP BPE vocabulary the suite
builds (library/tokenizer.py), padding with "!" as SD2's does. Seeded: same bytes each build.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from dreamwire.backend.library.tokenizer import write_clip_tokenizer

SEED = 20241203
LATENT = 4  # the SD VAE's latent channels
# What the tiny models see by default: 768 in the real models, scaled down as the weights are.
RESOLUTION = 64
STEPS = 4  # the v1-1 models' default_denoising_steps

# prs-eth's target properties (model_index.json of the v1-1 IID models).
APPEARANCE = {
    "target_names": ["albedo", "material"],
    "albedo": {"prediction_space": "srgb"},
    "material": {
        "prediction_space": "stack",
        "sub_target_names": ["roughness", "metallicity", None],
    },
    "roughness": {"prediction_space": "linear"},
    "metallicity": {"prediction_space": "linear"},
}
LIGHTING = {
    "target_names": ["albedo", "shading", "residual"],
    "albedo": {"prediction_space": "linear", "up_to_scale": False},
    "shading": {"prediction_space": "linear", "up_to_scale": True},
    "residual": {"prediction_space": "linear", "up_to_scale": True},
}
# Folder name -> (pipeline class, target properties or None for normals, seed offset).
TINY = {
    "tiny-marigold-iid-appearance": ("MarigoldIntrinsicsPipeline", APPEARANCE, 0),
    "tiny-marigold-iid-lighting": ("MarigoldIntrinsicsPipeline", LIGHTING, 10),
    "tiny-marigold-normals": ("MarigoldNormalsPipeline", None, 20),
}
# Built only on request (the depth preprocessor's tests), not by build()'s default.
DEPTH = {"tiny-marigold-depth": ("MarigoldDepthPipeline", None, 30)}


def _unet(targets: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=LATENT * (1 + targets),  # the image latent, then each target's
        out_channels=LATENT * targets,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 4),
        cross_attention_dim=32,
        use_linear_projection=True,
        upcast_attention=True,
    ).eval()


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=LATENT,
        norm_num_groups=16,
        sample_size=RESOLUTION,
        scaling_factor=0.18215,
    ).eval()


def _text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0,
    )
    return CLIPTextModel(config).eval()


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
    )


@lru_cache(maxsize=1)
def _tokenizer():
    """One for every pipeline built (making it reads the whole BPE vocabulary)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        return CLIPTokenizer.from_pretrained(write_clip_tokenizer(Path(tmp), pad_token="!"))


def pipeline(name: str):
    """The tiny model `name` (a key of TINY or DEPTH) as its diffusers pipeline, in memory."""
    import diffusers

    cls, props, offset = {**TINY, **DEPTH}[name]
    targets = len(props["target_names"]) if props else 1
    parts = {}
    for i, (key, make) in enumerate(
        (("unet", _unet), ("vae", _vae), ("text_encoder", _text_encoder))
    ):
        torch.manual_seed(SEED + offset + i)
        parts[key] = make(targets) if key == "unet" else make()
    kw = {"prediction_type": "intrinsics", "target_properties": props}
    if props is None:
        kw = {"prediction_type": "normals", "use_full_z_range": True}
    if name in DEPTH:
        kw = {"prediction_type": "depth", "scale_invariant": True, "shift_invariant": True}
    return getattr(diffusers, cls)(
        **parts,
        scheduler=_scheduler(),
        tokenizer=_tokenizer(),
        default_denoising_steps=STEPS,
        default_processing_resolution=RESOLUTION,
        **kw,
    )


def write(name: str, folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    pipeline(name).save_pretrained(str(folder), safe_serialization=True)
    # The slow tokenizer's files (vocab.json, merges.txt), as prs-eth's folders hold them.
    shutil.rmtree(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer", pad_token="!")
    return folder


def build(root: Path | str, names=tuple(TINY), under: str = "Marigold") -> dict[str, Path]:
    """Write the tiny Marigold folders under ROOT/models/<under>; returns name -> folder."""
    base = Path(root) / "models" / under
    return {name: write(name, base / name) for name in names}
