"""A tiny random-weight Flux.1 dev, as a diffusers folder, with tiny tokenizers.

The transformer, the 16-channel VAE, CLIP-L and T5 come from the catalog's tiny-flux
configs (models/configs/tiny-flux) after seeding torch, so every build writes the same
weights. CLIP's tokenizer is the real one (open_clip's BPE, as for SD); T5's sentencepiece
vocabulary is not shipped by any package, so the tiny model gets a small unigram tokenizer
in T5's format (pad 0, eos 1, unk 2: what T5TokenizerFast reads from tokenizer.json),
trained on a fixed word list so every build gives the same ids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.library.catalog import write_pipeline_config
from dreamwire.backend.tiny.files import state_of

ARCH = "tiny-flux"
SEED = 20241201

# Words the tiny T5 tokenizer is trained on: the test prompts' vocabulary and more.
WORDS = (
    "a cat sitting on a red chair in the garden, photo of a dog with a blue hat, castle on "
    "a hill at sunset, portrait of a woman wearing glasses, forest lake mountain river sky "
    "cloud tree flower house street city night day light dark green yellow white black "
    "orange purple brown grey pink painting drawing sketch oil watercolor digital art "
    "masterpiece best quality detailed sharp blurry ugly bad hands text watermark turn "
    "make change the colour color into replace remove add background foreground edit"
)


def _config(component: str, arch: str = ARCH) -> dict:
    folder = catalog.config_dir(arch) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / name).read_text())


def flux_components(arch: str = ARCH, guidance: bool = True) -> dict:
    """The weights-bearing components, seeded: transformer, vae, text_encoder (CLIP-L),
    text_encoder_2 (T5 encoder). guidance=False gives a schnell-like transformer (no
    guidance embedding)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    transformer_config = _config("transformer", arch) | {"guidance_embeds": guidance}
    torch.manual_seed(SEED + 1)
    transformer = FluxTransformer2DModel.from_config(transformer_config).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKL.from_config(_config("vae", arch)).eval()
    torch.manual_seed(SEED + 3)
    clip = CLIPTextModel(CLIPTextConfig(**_config("text_encoder", arch))).eval()
    torch.manual_seed(SEED + 4)
    t5 = T5EncoderModel(T5Config(**_config("text_encoder_2", arch))).eval()
    return {"transformer": transformer, "vae": vae, "text_encoder": clip, "text_encoder_2": t5}


# GGUF's K-quants pack super-blocks of 256 weights along each row, which the tiny model's
# 32-wide rows cannot hold: this one is 256 wide (16 heads of tiny-flux's 16 dimensions).
WIDE_HEADS = 16


def flux_wide_transformer(arch: str = ARCH):
    """tiny-flux's transformer with 256-wide rows (the K-quant tests' model), seeded."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(SEED + 5)
    config = _config("transformer", arch) | {"num_attention_heads": WIDE_HEADS}
    return FluxTransformer2DModel.from_config(config).eval()


def write_t5_tokenizer(folder: Path, vocab_size: int = 600) -> Path:
    """A small T5-format tokenizer (tokenizer.json + configs) under folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    words = WORDS.replace(",", " ,").split()
    tok.train_from_iterator([" ".join(words[i:] + words[:i]) for i in range(len(words))], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    fast = T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


def write_flux_diffusers_folder(parts: dict, folder: Path, arch: str = ARCH) -> Path:
    """A diffusers FluxPipeline folder: the catalog configs, both tokenizers, the weights."""
    from safetensors.torch import save_file

    if folder.exists():
        shutil.rmtree(folder)
    write_pipeline_config(arch, folder)  # configs + the CLIP tokenizer
    write_t5_tokenizer(folder / "tokenizer_2")
    if not parts["transformer"].config.guidance_embeds:
        config_path = folder / "transformer" / "config.json"
        config = json.loads(config_path.read_text()) | {"guidance_embeds": False}
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    for name, module in parts.items():
        weights = "model" if name.startswith("text_encoder") else "diffusion_pytorch_model"
        target = folder / name / f"{weights}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        tensors = state_of(module)
        # T5's encoder shares its embedding with `shared`; transformers saves it once.
        tensors.pop("encoder.embed_tokens.weight", None)
        save_file(dict(sorted(tensors.items())), str(target), metadata={"format": "pt"})
    return folder
