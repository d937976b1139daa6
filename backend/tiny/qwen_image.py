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


# -- ComfyUI's files ------------------------------------------------------------------------
def wan_vae_names(state: dict, num_res_blocks: int) -> dict:
    """A diffusers AutoencoderKLQwenImage state in the Wan 2.1 VAE's own names, as
    ComfyUI's qwen_image_vae.safetensors stores them (the inverse of the loader's mapping,
    written out independently so that the test checks one against the other)."""
    per_block = num_res_blocks + 1  # resnets per decoder up block, then its upsampler
    residual = {
        "norm1.gamma": "residual.0.gamma",
        "conv1.weight": "residual.2.weight",
        "conv1.bias": "residual.2.bias",
        "norm2.gamma": "residual.3.gamma",
        "conv2.weight": "residual.6.weight",
        "conv2.bias": "residual.6.bias",
        "conv_shortcut.weight": "shortcut.weight",
        "conv_shortcut.bias": "shortcut.bias",
    }
    fixed = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    side = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in fixed:
            name = f"{fixed[parts[0]]}.{parts[1]}"
        elif parts[1] in side:
            name = f"{parts[0]}.{side[parts[1]]}.{'.'.join(parts[2:])}"
        elif parts[1] == "mid_block":
            tail = ".".join(parts[4:])
            if parts[2] == "attentions":
                name = f"{parts[0]}.middle.1.{tail}"
            else:
                name = f"{parts[0]}.middle.{2 * int(parts[3])}.{residual.get(tail, tail)}"
        elif parts[1] == "down_blocks":
            tail = ".".join(parts[3:])
            name = f"encoder.downsamples.{parts[2]}.{residual.get(tail, tail)}"
        else:  # decoder.up_blocks.B.(resnets.R | upsamplers.0).rest
            block, what, index = int(parts[2]), parts[3], int(parts[4])
            tail = ".".join(parts[5:])
            flat = block * (per_block + 1) + (index if what == "resnets" else per_block)
            name = f"decoder.upsamples.{flat}.{residual.get(tail, tail)}"
        out[name] = value
    return out


def original_qwen25_names(state: dict) -> dict:
    """transformers 5's Qwen2_5_VLForConditionalGeneration names as Hugging Face's
    original checkpoint (and ComfyUI's qwen_2.5_vl_7b.safetensors) spells them."""
    return {
        k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v
        for k, v in state.items()
    }


def build_comfy_tree(root: Path, parts: dict) -> dict[str, Path]:
    """A ComfyUI install holding the tiny model as ComfyUI's Qwen-Image template loads it:
    the transformer (plain and with `model.diffusion_model.`), Qwen2.5-VL without its LM
    head, the Wan-layout VAE and the tokenizer in comfy/text_encoders/qwen25_tokenizer/."""
    models = root / "models"
    transformer = state_of(parts["transformer"])
    prefixed = {"model.diffusion_model." + k: v for k, v in transformer.items()}
    text = {
        k: v
        for k, v in original_qwen25_names(state_of(parts["text_encoder"])).items()
        if not k.startswith("lm_head.")
    }
    vae = parts["vae"]
    files = {
        "transformer": save_tensors(
            transformer, models / "diffusion_models" / "qwen_image_bf16.safetensors"
        ),
        "prefixed": save_tensors(
            prefixed, models / "diffusion_models" / "qwen_image_comfy.safetensors"
        ),
        "text_encoder": save_tensors(text, models / "text_encoders" / "qwen_2.5_vl_7b.safetensors"),
        "vae": save_tensors(
            wan_vae_names(state_of(vae), vae.config.num_res_blocks),
            models / "vae" / "qwen_image_vae.safetensors",
        ),
    }
    files["tokenizer"] = write_qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")
    return files


def write_gguf_transformer(transformer, path: Path, qtype: str = "Q8_0") -> Path:
    """city96's qwen-image-*.gguf (what ComfyUI-GGUF's Unet Loader reads): ComfyUI's
    (diffusers') names, no prefix, `general.architecture` "qwen_image"; vectors and rows the
    block size does not divide stay F32 (flux_files.write_gguf)."""
    from dreamwire.backend.tiny.flux_files import write_gguf

    return write_gguf(state_of(transformer), path, "qwen_image", qtype)
