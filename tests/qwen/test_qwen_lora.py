"""Qwen-Image LoRAs in the names they are published in (diffusers/PEFT as ai-toolkit
writes them, ComfyUI's) are told from Flux's, patch the transformer for the job and are
restored after it; a Flux LoRA on Qwen-Image is refused naming its lineage."""

from __future__ import annotations

import pytest
import torch

from dreamwire.backend.tiny.files import save_tensors
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, LoraRef
from tests.qwen.reference import BASE, PROMPT, maxdiff
from tests.support.engines import cpu_engine

# Two of the tiny transformer's layers, one of them Qwen's own (img_mlp), rank 2.
LAYERS = {
    "transformer_blocks.0.attn.to_q": (32, 32),
    "transformer_blocks.0.img_mlp.net.2": (32, 128),
}


def _pairs(prefix: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    out = {}
    for name, (n_out, n_in) in LAYERS.items():
        out[f"{prefix}{name}.lora_A.weight"] = torch.randn(2, n_in, generator=g)
        out[f"{prefix}{name}.lora_B.weight"] = torch.randn(n_out, 2, generator=g) * 0.5
    return out


@pytest.fixture(scope="module")
def lora_engine(qwen_root, tmp_path_factory):

    root = tmp_path_factory.mktemp("qwen-loras")
    save_tensors(_pairs("transformer."), root / "models" / "Lora" / "qwen_peft.safetensors")
    comfy = root / "models" / "Lora" / "qwen_comfy.safetensors"
    save_tensors(_pairs("diffusion_model."), comfy)
    flux = {  # a Flux LoRA in BFL names
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 32),
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(96, 2),
    }
    save_tensors(flux, root / "models" / "Lora" / "flux_style.safetensors")
    return cpu_engine(qwen_root, root)


def test_qwen_loras_patch_the_job_and_flux_ones_are_refused(lora_engine):
    job = dict(BASE, model="tiny-qwen-image", prompt=PROMPT)
    plain = lora_engine.run(Job(**job)).images[0].image
    peft = lora_engine.run(Job(**job, loras=[LoraRef("qwen_peft")])).images[0].image
    comfy = lora_engine.run(Job(**job, loras=[LoraRef("qwen_comfy")])).images[0].image
    assert maxdiff(peft, plain) > 0
    assert maxdiff(peft, comfy) == 0  # the same layers under either name
    assert maxdiff(lora_engine.run(Job(**job)).images[0].image, plain) == 0  # restored
    with pytest.raises(DreamwireError) as err:
        lora_engine.run(Job(**job, loras=[LoraRef("flux_style")]))
    assert err.value.code is ErrorCode.MODEL_MISMATCH
    assert "made for Flux.1 models" in err.value.message
