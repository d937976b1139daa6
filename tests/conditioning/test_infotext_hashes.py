"""A1111's "Lora hashes" and "TI hashes" in real engine output, with the hashes computed
here from the files the way A1111 does, and the fields in A1111's order."""

from __future__ import annotations

import hashlib
import struct

from dreamwire.shared.infotext import format_infotext, parse_infotext
from dreamwire.shared.job import HiresFix, Job, LoraRef

BASE = dict(steps=2, cfg=6.0, width=64, height=64, seed=3, sampler="Euler")


def _addnet(path) -> str:
    """A1111's LoRA short hash: sha256 of a .safetensors file after its header."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length :]).hexdigest()[:12]


def _sha12(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _run(engine, **kw):
    text = engine.run(Job(**{**BASE, **kw})).images[0].infotext
    info = parse_infotext(text)
    assert format_infotext(info) == text
    return text, info


def test_lora_and_ti_hashes_in_a1111_order(engine, tiny_models):
    models = tiny_models / "models"
    text, info = _run(
        engine,
        prompt="moss, bricks <lora:tiny_style:0.8>",
        negative="EasyNegative, blur",
        hires=HiresFix(scale=1.5, denoise=0.5, steps=2, upscaler="Latent"),
    )
    assert info.lora_hashes == {"tiny_style": _addnet(models / "Lora/tiny_style.safetensors")}
    assert info.ti_hashes == {
        "EasyNegative": _sha12(models / "embeddings/EasyNegative.safetensors")
    }
    assert f'Lora hashes: "tiny_style: {info.lora_hashes["tiny_style"]}"' in text
    # A1111's order: fixed fields, then txt2img's Hires fields, then the networks' hashes.
    assert info.order == [
        "Steps",
        "Sampler",
        "Schedule type",
        "CFG scale",
        "Seed",
        "Size",
        "Model hash",
        "Model",
        "Denoising strength",
        "Hires upscale",
        "Hires steps",
        "Hires upscaler",
        "Lora hashes",
        "TI hashes",
    ]


def test_hashes_only_for_what_the_job_used(engine, tiny_models):
    models = tiny_models / "models"
    _, plain = _run(engine, prompt="moss", negative="blur")
    assert "Lora hashes" not in plain.order and "TI hashes" not in plain.order
    # A LoRA from the job's list is written by its name too; two embeddings, both listed.
    _, info = _run(
        engine,
        prompt="moss, EasyNegative",
        negative="bad-hands-5",
        loras=[LoraRef("tiny_peft", 0.5)],
    )
    assert info.lora_hashes == {"tiny_peft": _addnet(models / "Lora/tiny_peft.safetensors")}
    assert info.ti_hashes == {
        "EasyNegative": _sha12(models / "embeddings/EasyNegative.safetensors"),
        "bad-hands-5": _sha12(models / "embeddings/bad-hands-5.pt"),
    }
