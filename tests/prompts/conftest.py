"""Tiny SD1 and SDXL diffusers pipelines built in memory from the tiny-model builders
(the same weights and offline tokenizers the tiny checkpoints carry), for text encoding."""

from __future__ import annotations

import pytest


def _pipeline(arch: str, tmp_path_factory):
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTokenizer

    from dreamwire.backend.library.catalog import write_pipeline_config
    from dreamwire.backend.tiny import build

    folder = write_pipeline_config(arch, tmp_path_factory.mktemp(arch))
    scheduler = EulerDiscreteScheduler.from_pretrained(folder / "scheduler")
    if arch == "tiny-sd1":
        parts = build.sd1_components()
        return StableDiffusionPipeline(
            vae=parts["vae"],
            text_encoder=parts["text_encoder"],
            tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            unet=parts["unet"],
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    parts = build.sdxl_components()
    return StableDiffusionXLPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        text_encoder_2=parts["text_encoder_2"],
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        unet=parts["unet"],
        scheduler=scheduler,
    )


@pytest.fixture(scope="session")
def sd1_pipe(tmp_path_factory):
    return _pipeline("tiny-sd1", tmp_path_factory)


@pytest.fixture(scope="session")
def sdxl_pipe(tmp_path_factory):
    return _pipeline("tiny-sdxl", tmp_path_factory)
