"""A tiny random-weight Z-Image Turbo in the layouts people download.

The transformer, Flux's 16-channel VAE and the Qwen3 text model come from the catalog's
tiny-zimage configs after seeding torch, so every build writes the same weights. Qwen's
tokenizer is byte-level BPE trained here on a fixed word list, written in the real file
formats: a diffusers folder's `tokenizer/` (tokenizer.json, with Qwen3's chat template) and
ComfyUI's `comfy/text_encoders/qwen25_tokenizer/` (vocab.json + merges.txt, with Qwen2.5's
template, whose default system message the engine must not pick up).

Files as ComfyUI's Z-Image template has them: models/diffusion_models/
z_image_turbo_bf16.safetensors (ComfyUI's transformer names: fused qkv, `x_embedder`,
`final_layer`, q/k_norm), an fp8 (e4m3fn) and a GGUF copy (city96's layout), models/text_encoders/
qwen_3_4b.safetensors (Qwen3ForCausalLM names) and models/vae/ae.safetensors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.tiny.files import save_tensors, state_of
from dreamwire.backend.tiny.flux import WORDS
from dreamwire.backend.tiny.flux_files import FP8, vae_tensors, write_gguf

ARCH = "tiny-zimage"
SEED = 20251126
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen3's chat template reduced to what a user turn and the generation prompt write (with
# and without thinking, as Z-Image and Flux.2 Klein ask for it).
QWEN3_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
# Qwen2.5's: a system turn first unless the messages bring one.
QWEN25_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}" + QWEN3_TEMPLATE
)


def _config(component: str) -> dict:
    folder = catalog.config_dir(ARCH) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / name).read_text())


def zimage_components() -> dict:
    """transformer, vae, text_encoder (Qwen3Model), seeded."""
    from diffusers import AutoencoderKL, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(SEED + 1)
    transformer = ZImageTransformer2DModel.from_config(_config("transformer")).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKL.from_config(_config("vae")).eval()
    torch.manual_seed(SEED + 3)
    text_encoder = Qwen3Model(Qwen3Config(**_config("text_encoder"))).eval()
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder}


def _bpe():
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = (WORDS + " user assistant system").replace(",", " ,").split()
    tok.train_from_iterator([" ".join(words[i:] + words[:i]) for i in range(len(words))], trainer)
    return tok


def write_qwen_tokenizer(folder: Path, template: str = QWEN3_TEMPLATE) -> Path:
    """vocab.json + merges.txt + tokenizer_config.json (ComfyUI's qwen25_tokenizer files)."""
    folder.mkdir(parents=True, exist_ok=True)
    _bpe().model.save(str(folder))
    added = {
        str(i): {
            "content": s,
            "special": True,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "single_word": False,
        }
        for i, s in enumerate(SPECIALS)
    }
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "model_max_length": 131072,
        "split_special_tokens": False,
        "chat_template": template,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def write_diffusers_tokenizer(folder: Path) -> Path:
    """The tokenizer as a Z-Image diffusers folder has it (tokenizer.json + config)."""
    from transformers import AutoTokenizer

    scratch = write_qwen_tokenizer(folder.parent / (folder.name + ".src"))
    AutoTokenizer.from_pretrained(str(scratch)).save_pretrained(str(folder))
    shutil.rmtree(scratch)
    return folder


def write_zimage_diffusers_folder(parts: dict, folder: Path) -> Path:
    from safetensors.torch import save_file

    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(catalog.config_dir(ARCH), folder)
    write_diffusers_tokenizer(folder / "tokenizer")
    for name, module in parts.items():
        weights = "model" if name == "text_encoder" else "diffusion_pytorch_model"
        target = folder / name / f"{weights}.safetensors"
        save_file(dict(sorted(state_of(module).items())), str(target), metadata={"format": "pt"})
    return folder


def comfy_transformer_tensors(transformer) -> dict[str, torch.Tensor]:
    """diffusers' names -> ComfyUI's (the inverse of diffusers'
    convert_z_image_transformer_checkpoint_to_diffusers): q/k/v fused into qkv."""
    renames = (
        ("all_final_layer.2-1.", "final_layer."),
        ("all_x_embedder.2-1.", "x_embedder."),
        (".attention.to_out.0.", ".attention.out."),
        (".attention.norm_k.", ".attention.k_norm."),
        (".attention.norm_q.", ".attention.q_norm."),
    )
    state = state_of(transformer)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            parts = [state[key.replace(".to_q.", f".to_{x}.")] for x in "qkv"]
            key, value = key.replace(".to_q.", ".qkv."), torch.cat(parts)
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


def text_encoder_tensors(text_encoder) -> dict[str, torch.Tensor]:
    """Qwen3ForCausalLM's names, as qwen_3_4b.safetensors stores them (its LM head is tied
    to the embedding, so the file has none)."""
    return {"model." + k: v for k, v in state_of(text_encoder).items()}


def write_qwen3_gguf(text_encoder, path: Path, qtype: str = "Q8_0") -> Path:
    """A Qwen3 text encoder as llama.cpp's convert_hf_to_gguf.py writes one (ComfyUI's
    text_encoders/qwen_3_4b-Q8_0.gguf and the like, which city96's ComfyUI-GGUF loads):
    llama.cpp's tensor names (`blk.N.attn_q`, `token_embd`), matrices in `qtype`, and the
    `qwen3.*` hyperparameters transformers reads a config from."""
    import gguf

    config = text_encoder.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, config.num_hidden_layers)
    tensors = {}
    for key, value in text_encoder_tensors(text_encoder).items():
        module, _, param = key.rpartition(".")
        tensors[f"{names.get_name(module)}.{param}"] = value

    def describe(writer) -> None:
        writer.add_context_length(config.max_position_embeddings)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_embedding_length(config.hidden_size)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
        writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_vocab_size(config.vocab_size)

    return write_gguf(tensors, path, "qwen3", qtype, describe=describe)


def build_comfy_tree(root: Path, parts: dict) -> dict[str, Path]:
    """A ComfyUI install with Z-Image Turbo's files where its template puts them."""
    models = Path(root) / "models"
    transformer = comfy_transformer_tensors(parts["transformer"])
    return {
        "transformer": save_tensors(
            transformer, models / "diffusion_models" / "z_image_turbo_bf16.safetensors"
        ),
        "fp8": save_tensors(
            {k: v.to(FP8) if v.ndim == 2 else v for k, v in transformer.items()},
            models / "diffusion_models" / "z_image_turbo_fp8_e4m3fn.safetensors",
        ),
        "gguf": write_gguf(
            transformer,
            models / "diffusion_models" / "z_image_turbo-Q8_0.gguf",
            "lumina2",
            "Q8_0",
            # Learned pad tokens are parameters, not layers: GGUF files keep them whole.
            full_precision=("x_pad_token", "cap_pad_token"),
        ),
        "text_encoder": save_tensors(
            text_encoder_tensors(parts["text_encoder"]),
            models / "text_encoders" / "qwen_3_4b.safetensors",
        ),
        "vae": save_tensors(vae_tensors(parts["vae"]), models / "vae" / "ae.safetensors"),
        "tokenizer": write_qwen_tokenizer(
            Path(root) / "comfy" / "text_encoders" / "qwen25_tokenizer", QWEN25_TEMPLATE
        ),
    }


CONTROLNET_SEED = SEED + 10


def zimage_controlnet(control_in_dim: int | None = None):
    """A seeded ZImageControlNetModel with tiny-zimage's widths in the Fun ControlNet 1.0
    layout (a control layer per transformer layer here: the release spreads 6 over 30;
    plain refiner copies); `control_in_dim` 33 gives it 2.x's inpaint input channels.
    The zero-initialised projections get small random values, so that the control picture
    and the weight really change the result."""
    from diffusers import ZImageControlNetModel

    base = _config("transformer")
    keep = ("all_patch_size", "all_f_patch_size", "dim", "n_refiner_layers", "n_heads")
    keep += ("n_kv_heads", "norm_eps", "qk_norm")
    config = {k: base[k] for k in keep} | {
        "control_layers_places": list(range(base["n_layers"])),
        "control_refiner_layers_places": list(range(base["n_refiner_layers"])),
        "control_in_dim": control_in_dim or base["in_channels"],
        "add_control_noise_refiner": None,
    }
    torch.manual_seed(CONTROLNET_SEED)
    net = ZImageControlNetModel.from_config(config).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "_proj." in name:
                param.normal_(0.0, 0.3)
    return net


def write_zimage_controlnet(net, path: Path) -> Path:
    """The weights as Alibaba ships them (one .safetensors, diffusers' module names)."""
    return save_tensors(state_of(net), path)
