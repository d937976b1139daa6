"""A tiny random-weight Qwen-Image (and its Edit twin), as diffusers folders, with a tiny
Qwen2 tokenizer in the files ComfyUI ships (vocab.json + merges.txt + tokenizer_config.json).

The transformer, the 16-channel Qwen-Image VAE and Qwen2.5-VL come from the catalog's
tiny-qwen-image configs after seeding torch, so every build writes the same weights. Qwen's
own 151k-token vocabulary is not shipped by any package, so the tiny model gets a byte-level
BPE trained on a fixed text (the chat template's words and the test prompts') with Qwen's
special tokens after it, at the ids the tiny text encoder's config names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.tiny.files import component_config, save_tensors, state_of

ARCH = "tiny-qwen-image"
SEED = 20251207
BPE_SIZE = 296  # byte alphabet (256) + merges; the special tokens follow at 296..302
# Qwen2's special tokens in its order; vision_start 299 .. video_pad 302 are the ids the
# tiny text encoder's config names (image_token_id 301: the processor's image placeholder).
SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_TEXT = (
    "Describe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background: system user assistant Picture 1 "
    "a cat sitting on a red chair in the garden, photo of a dog with a blue hat, make the "
    "car red, remove the text, change the background, layers of a poster, blurry ugly"
)


def qwen_components(arch: str = ARCH) -> dict:
    """The weights-bearing components, seeded: transformer, vae, text_encoder (Qwen2.5-VL
    with its vision tower, which the Edit pipelines feed the picture)."""
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(SEED + 1)
    transformer = QwenImageTransformer2DModel.from_config(
        component_config(arch, "transformer")
    ).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKLQwenImage.from_config(component_config(arch, "vae")).eval()
    torch.manual_seed(SEED + 3)
    config = Qwen2_5_VLConfig(**component_config(arch, "text_encoder"))
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder}


def write_qwen_tokenizer(folder: Path) -> Path:
    """vocab.json, merges.txt and tokenizer_config.json, as in ComfyUI's
    comfy/text_encoders/qwen25_tokenizer/ (Qwen2Tokenizer reads them)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = _TEXT.split()
    tok.train_from_iterator([" ".join(words[i:] + words[:i]) for i in range(len(words))], trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))  # vocab.json + merges.txt
    added = {
        str(BPE_SIZE + i): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, token in enumerate(SPECIALS)
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": list(SPECIALS[1:]),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def write_qwen_diffusers_folder(parts: dict, folder: Path, arch: str = ARCH) -> Path:
    """A diffusers QwenImagePipeline folder (QwenImageEditPipeline for an Edit arch, with
    its processor): the catalog configs, the tokenizer, the weights."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(catalog.config_dir(arch), folder)
    write_qwen_tokenizer(folder / "tokenizer")
    index = json.loads((folder / "model_index.json").read_text())
    if "processor" in index:
        write_qwen_processor(folder / "processor", folder / "tokenizer")
    for name, module in parts.items():
        weights = "model" if name == "text_encoder" else "diffusion_pytorch_model"
        save_tensors(state_of(module), folder / name / f"{weights}.safetensors", {"format": "pt"})
    return folder


def write_qwen_processor(folder: Path, tokenizer: Path) -> Path:
    """Qwen2.5-VL's processor files (image preprocessing + the tokenizer), as the Edit
    checkpoints' processor/ folder holds them."""
    from transformers import AutoTokenizer

    from dreamwire.backend.library.qwen_processor import ImageOnlyQwenProcessor, image_processor

    processor = ImageOnlyQwenProcessor(
        image_processor(), AutoTokenizer.from_pretrained(str(tokenizer))
    )
    processor.save_pretrained(str(folder))
    return folder
