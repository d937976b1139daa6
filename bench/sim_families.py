"""Each family bench/pipeline_sim.py simulates, as data: the catalog config its real
architecture is built from (models/configs/<arch>: model_index.json names every
component's class), its text encoders in the pipeline's order with the sequence length
the pipeline feeds them, and how diffusers' pipeline calls its transformer and its VAE
(the inputs' shapes at a given latent size, and whether classifier-free guidance doubles
the transformer's batch or runs a second call after the first).

Sequence lengths are the pipelines' maxima, the worst case a long prompt reaches:
FluxPipeline and Flux2KleinPipeline pad to 512; StableDiffusion3Pipeline feeds 77 CLIP
tokens and 256 T5 tokens (its max_sequence_length); QwenImagePipeline and ZImagePipeline
trim padding, up to 512 prompt tokens (Qwen-Image's behind a 34-token template).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

BF16 = torch.bfloat16


@dataclass(frozen=True)
class TextPart:
    component: str  # the catalog config's folder ("text_encoder_2")
    label: str
    tokens: int  # input ids per prompt
    hidden_states: bool = False  # the pipeline reads hidden states (output_hidden_states)
    attention_mask: bool = False  # the pipeline passes one (chat-model encoders)


@dataclass(frozen=True)
class SimFamily:
    key: str  # the family spec's key (backend/families), whose MemoryFigures the sim checks
    label: str
    arch: str  # catalog config folder
    texts: tuple[TextPart, ...]
    text_tokens: int  # the context the transformer attends to
    # One transformer call: (transformer, latent side, batch) with inputs as the pipeline
    # builds them (packed tokens, ids, lists).
    call: Callable[[torch.nn.Module, int, int], object]
    # One decode of a latent of the given side, in the VAE's own layout.
    decode: Callable[[torch.nn.Module, int], object]
    # CFG in diffusers' pipeline: True when it doubles the transformer's batch (SD3,
    # Z-Image base), False when it is distilled away or runs as a second call in turn
    # (Flux.1 dev, Z-Image Turbo, Flux.2 Klein, Qwen-Image's true CFG).
    cfg_batch: bool
    # The catalog's variant of `arch` ("" = a plain one): the spec's figures for it
    # (FamilySpec.memory_for; SD3.5 Medium has its own).
    variant: str = ""


def _flux(model, lat: int, n: int):
    cfg = model.config
    tokens = (lat // 2) ** 2  # 2x2 latent pixels per token
    return model(
        torch.randn(n, tokens, cfg.in_channels, dtype=BF16),
        encoder_hidden_states=torch.randn(n, 512, cfg.joint_attention_dim, dtype=BF16),
        pooled_projections=torch.randn(n, cfg.pooled_projection_dim, dtype=BF16),
        timestep=torch.full((n,), 0.5, dtype=BF16),
        img_ids=torch.zeros(tokens, 3, dtype=BF16),
        txt_ids=torch.zeros(512, 3, dtype=BF16),
        guidance=torch.full((n,), 3.5) if cfg.guidance_embeds else None,
        return_dict=False,
    )[0]


def _sd3(model, lat: int, n: int):
    cfg = model.config
    return model(
        torch.randn(n, cfg.in_channels, lat, lat, dtype=BF16),
        encoder_hidden_states=torch.randn(n, 77 + 256, cfg.joint_attention_dim, dtype=BF16),
        pooled_projections=torch.randn(n, cfg.pooled_projection_dim, dtype=BF16),
        timestep=torch.full((n,), 500.0, dtype=BF16),
        return_dict=False,
    )[0]


def _qwen(model, lat: int, n: int):
    cfg = model.config
    side = lat // 2
    # One prompt without padding: the pipeline then drops the all-true mask.
    return model(
        torch.randn(n, side * side, cfg.in_channels, dtype=BF16),
        encoder_hidden_states=torch.randn(n, 512, cfg.joint_attention_dim, dtype=BF16),
        timestep=torch.full((n,), 0.5, dtype=BF16),
        img_shapes=[[(1, side, side)]] * n,
        return_dict=False,
    )[0]


def _zimage(model, lat: int, n: int):
    cfg = model.config
    x = [torch.randn(cfg.in_channels, 1, lat, lat, dtype=BF16) for _ in range(n)]
    caps = [torch.randn(512, cfg.cap_feat_dim, dtype=BF16) for _ in range(n)]
    return model(x, torch.full((n,), 0.5, dtype=BF16), caps, return_dict=False)[0]


def _flux2(model, lat: int, n: int):
    cfg = model.config
    tokens = (lat // 2) ** 2
    return model(
        torch.randn(n, tokens, cfg.in_channels, dtype=BF16),
        encoder_hidden_states=torch.randn(n, 512, cfg.joint_attention_dim, dtype=BF16),
        timestep=torch.full((n,), 0.5, dtype=BF16),
        img_ids=torch.zeros(n, tokens, 4, dtype=torch.long),
        txt_ids=torch.zeros(n, 512, 4, dtype=torch.long),
        guidance=None,
        return_dict=False,
    )[0]


def _decode_2d(vae, lat: int):
    return vae.decode(torch.randn(1, vae.config.latent_channels, lat, lat, dtype=BF16)).sample


def _decode_qwen(vae, lat: int):  # a video VAE: one frame
    return vae.decode(torch.randn(1, vae.config.z_dim, 1, lat, lat, dtype=BF16)).sample


CLIP_L = TextPart("text_encoder", "CLIP-L", 77, hidden_states=True)
QWEN3 = TextPart("text_encoder", "Qwen3-4B", 512, hidden_states=True, attention_mask=True)
SD3_TEXTS = (
    CLIP_L,
    TextPart("text_encoder_2", "CLIP-G", 77, hidden_states=True),
    TextPart("text_encoder_3", "T5-XXL", 256),
)

FLUX = SimFamily(
    "flux",
    "Flux.1 dev",
    "flux-dev",
    (TextPart("text_encoder", "CLIP-L", 77), TextPart("text_encoder_2", "T5-XXL", 512)),
    512,
    _flux,
    _decode_2d,
    cfg_batch=False,
)
SD35_LARGE = SimFamily(
    "sd3", "SD3.5 Large", "sd3.5-large", SD3_TEXTS, 333, _sd3, _decode_2d, cfg_batch=True
)
SD35_MEDIUM = SimFamily(
    "sd3",
    "SD3.5 Medium",
    "sd3.5-medium",
    SD3_TEXTS,
    333,
    _sd3,
    _decode_2d,
    cfg_batch=True,
    variant="medium",
)
QWEN_IMAGE = SimFamily(
    "qwen-image",
    "Qwen-Image",
    "qwen-image",
    (TextPart("text_encoder", "Qwen2.5-VL-7B", 34 + 512, True, True),),
    512,
    _qwen,
    _decode_qwen,
    cfg_batch=False,
)
ZIMAGE_TURBO = SimFamily(
    "zimage", "Z-Image Turbo", "zimage-turbo", (QWEN3,), 512, _zimage, _decode_2d, cfg_batch=False
)
FLUX2_KLEIN = SimFamily(
    "flux2", "Flux.2 Klein 4B", "flux2-klein-4b", (QWEN3,), 512, _flux2, _decode_2d, cfg_batch=False
)

FAMILIES = {
    f.arch: f for f in (FLUX, SD35_LARGE, SD35_MEDIUM, QWEN_IMAGE, ZIMAGE_TURBO, FLUX2_KLEIN)
}
