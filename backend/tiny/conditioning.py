"""Tiny random-weight ControlNets, LoRAs and embeddings in the formats artists download.

`build(root)` writes, beside the tiny base models (whose catalog configs fix every dim):

    models/ControlNet/control_v11*_sd15_<type>.safetensors  ControlNet 1.1 single files in the
                                                            original `control_model.` layout
                                                            (and control_v2p_sd15_mediapipe_face,
                                                            ControlNetMediaPipeFace's)
    models/ControlNet/control_v11p_sd15_lineart/            a diffusers ControlNet folder
    models/ControlNet/diffusers_xl_depth_full.safetensors   SDXL ControlNet (diffusers keys, as
                                                            lllyasviel/sd_control_collection)
    models/ControlNet/t2iadapter_*, t2i-adapter*            T2I-Adapters (tiny/t2i_adapter.py)
    models/Lora/tiny_style.safetensors      kohya LoRA: lora_unet_*/lora_te_*, conv LoRA, alpha
    models/Lora/tiny_peft.safetensors       diffusers/PEFT LoRA (lora_A / lora_B)
    models/Lora/tiny_loha.safetensors       LyCORIS LoHa
    models/Lora/tiny_lokr.safetensors       LyCORIS LoKr (recognised, refused)
    models/Lora/tiny_xl_style.safetensors   kohya SDXL LoRA (lora_unet_input_blocks_*, lora_te1/te2)
    models/Lora/tiny_hypernet.pt            legacy A1111 hypernetwork (recognised, refused)
    models/Lora/lcm-lora-sdv1-5.safetensors LCM-LoRA for tiny SD1, the real one's layout
                                            (tiny/lcm_lora.py)
    models/embeddings/bad-hands-5.pt        A1111 .pt (string_to_param), loads weights_only
    models/embeddings/EasyNegative.safetensors  A1111 safetensors (emb_params)
    models/embeddings/negativeXL_D.safetensors  SDXL (clip_l / clip_g)

Weights are random but seeded, so every build writes the same bytes. The ControlNets' zero
convolutions (and the hint encoder's zero-initialised last conv) are given small random
values: left at zero, the control image would change nothing and every ControlNet test would
pass vacuously.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.library.ldm_layout import unet_to_ldm
from dreamwire.backend.tiny.files import save_tensors, unet_config

SEED = 20240777
CONTROLNET_PREFIX = "control_model."
HINT_CHANNELS = (16, 32, 96, 256)  # ControlNet 1.1's input hint block, kept at real size

# The ControlNet 1.1 family as lllyasviel named the files (f1 = fixed, e = experimental).
SD15_CONTROLNETS = {
    "depth": "control_v11f1p_sd15_depth",
    "normalbae": "control_v11p_sd15_normalbae",
    "openpose": "control_v11p_sd15_openpose",
    "seg": "control_v11p_sd15_seg",
    "canny": "control_v11p_sd15_canny",
    "mlsd": "control_v11p_sd15_mlsd",
    "softedge": "control_v11p_sd15_softedge",
    "scribble": "control_v11p_sd15_scribble",
    "lineart_anime": "control_v11p_sd15s2_lineart_anime",
    "shuffle": "control_v11e_sd15_shuffle",
    "tile": "control_v11f1e_sd15_tile",
    "inpaint": "control_v11p_sd15_inpaint",
    "ip2p": "control_v11e_sd15_ip2p",
    # CrucibleAI's ControlNetMediaPipeFace, trained with the ControlNet 1.0 code: the same
    # single-file layout under its own name.
    "mediapipe_face": "control_v2p_sd15_mediapipe_face",
}
SD15_DIFFUSERS_FOLDER = ("lineart", "control_v11p_sd15_lineart")
SDXL_CONTROLNET = ("depth", "diffusers_xl_depth_full")


def _text_hidden(arch: str, component: str) -> int:
    return json.loads((catalog.config_dir(arch) / component / "config.json").read_text())[
        "hidden_size"
    ]


def controlnet_config(unet_config: dict, **extra) -> dict:
    """The ControlNet that mirrors a UNet, as diffusers' ControlNetModel.from_unet builds it."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        net = ControlNetModel.from_unet(
            unet, load_weights_from_unet=False, conditioning_embedding_out_channels=HINT_CHANNELS
        )
    config = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    config.update(extra)
    return config


def random_controlnet(arch: str, seed: int, **extra):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel.from_config(controlnet_config(unet_config(arch), **extra)).eval()
    with torch.no_grad():
        # diffusers zero-initialises these (the "zero convolutions"), including the hint
        # encoder's last conv: left at zero, the control image would have no effect at all.
        zeroed = [*net.controlnet_down_blocks, net.controlnet_mid_block]
        for block in zeroed:
            block.weight.normal_(0.0, 0.05)
            block.bias.normal_(0.0, 0.05)
        # The hint encoder gets a variance-preserving init: with the default init its random
        # biases drown the image after eight layers, and every control image looks alike.
        emb = net.controlnet_cond_embedding
        for conv in [emb.conv_in, *emb.blocks, emb.conv_out]:
            fan_in = conv.weight[0].numel()
            conv.weight.normal_(
                0.0, (2.0 / fan_in) ** 0.5 if conv is not emb.conv_out else fan_in**-0.5
            )
            conv.bias.zero_()
    return net


_HINT = {"conv_in": "0", "conv_out": "14"} | {f"blocks.{i}": str(2 * (i + 1)) for i in range(6)}


def controlnet_to_original(state: dict[str, torch.Tensor], unet_config: dict) -> dict:
    """diffusers ControlNet keys -> the ControlNet 1.1 file layout (`control_model.` + LDM names)."""
    out: dict[str, torch.Tensor] = {}
    unet_part: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if m := re.fullmatch(r"controlnet_cond_embedding\.(.+)", module):
            out[f"input_hint_block.{_HINT[m[1]]}.{param}"] = value
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
            out[f"zero_convs.{m[1]}.0.{param}"] = value
        elif module == "controlnet_mid_block":
            out[f"middle_block_out.0.{param}"] = value
        else:
            unet_part[key] = value
    for key, value in unet_to_ldm(unet_part, unet_config).items():
        out[key.removeprefix("model.diffusion_model.")] = value
    return {CONTROLNET_PREFIX + k: v.contiguous() for k, v in out.items()}


def build_controlnets(folder: Path) -> dict[str, Path]:
    written = {}
    sd1 = unet_config("tiny-sd1")
    for i, (kind, name) in enumerate(SD15_CONTROLNETS.items()):
        # The shuffle model pools its residuals globally (control_v11e_sd15_shuffle.yaml).
        extra = {"global_pool_conditions": True} if kind == "shuffle" else {}
        net = random_controlnet("tiny-sd1", SEED + i, **extra)
        tensors = controlnet_to_original(net.state_dict(), sd1)
        written[name] = save_tensors(tensors, folder / f"{name}.safetensors")
    kind, name = SD15_DIFFUSERS_FOLDER
    target = folder / name
    if target.exists():
        shutil.rmtree(target)
    random_controlnet("tiny-sd1", SEED + 50).save_pretrained(target, safe_serialization=True)
    written[name] = target
    kind, name = SDXL_CONTROLNET
    net = random_controlnet("tiny-sdxl", SEED + 60)
    written[name] = save_tensors(net.state_dict(), folder / f"{name}.safetensors")
    return written


# --- LoRA ---------------------------------------------------------------------------


def lora_pair(gen: torch.Generator, out_f: int, in_f: int, rank: int, kernel=None):
    if kernel is None:
        down = torch.randn(rank, in_f, generator=gen) * 0.1
        up = torch.randn(out_f, rank, generator=gen) * 0.1
    else:
        down = torch.randn(rank, in_f, *kernel, generator=gen) * 0.1
        up = torch.randn(out_f, rank, 1, 1, generator=gen) * 0.1
    return down, up


def _modules(model: torch.nn.Module, names: list[str]) -> dict[str, torch.nn.Module]:
    found = dict(model.named_modules())
    return {n: found[n] for n in names}


def _targets(arch: str) -> dict[str, dict[str, torch.nn.Module]]:
    """A few real target modules per part, taken from the tiny models' own modules."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel.from_config(unet_config(arch))
    te_cfg = json.loads((catalog.config_dir(arch) / "text_encoder" / "config.json").read_text())
    te = CLIPTextModel(CLIPTextConfig(**te_cfg))
    attn_block = "down_blocks.0" if arch == "tiny-sd1" else "down_blocks.1"
    base = f"{attn_block}.attentions.0.transformer_blocks.0"
    return {
        "unet": _modules(
            unet,
            [
                f"{base}.attn1.to_q",
                f"{base}.attn1.to_v",
                f"{base}.attn2.to_k",
                f"{base}.ff.net.2",
                f"{attn_block}.attentions.0.proj_in",
                "down_blocks.0.resnets.0.conv1",  # conv LoRA (3x3 down, 1x1 up)
                "mid_block.resnets.0.conv2",
            ],
        ),
        # Files name text-encoder modules as transformers 4 did (`text_model.encoder...`).
        "te": {
            f"text_model.{n}": m
            for n, m in _modules(
                te,
                [
                    "encoder.layers.0.self_attn.q_proj",
                    "encoder.layers.1.mlp.fc1",
                    "encoder.layers.3.self_attn.out_proj",
                ],
            ).items()
        },
    }


def layer_shape(module: torch.nn.Module) -> tuple[int, int, tuple | None]:
    w = module.weight
    if w.ndim == 4:
        return w.shape[0], w.shape[1], tuple(w.shape[2:]) if w.shape[2] > 1 else None
    return w.shape[0], w.shape[1], None


def build_kohya_sd1(path: Path, rank: int = 4, alpha: float = 2.0) -> Path:
    """kohya sd-scripts SD1 keys: diffusers module names with '.' -> '_' under lora_unet_/lora_te_."""
    gen = torch.Generator().manual_seed(SEED + 100)
    tensors: dict[str, torch.Tensor] = {}
    targets = _targets("tiny-sd1")
    for part, prefix in (("unet", "lora_unet_"), ("te", "lora_te_")):
        for name, module in targets[part].items():
            out_f, in_f, kernel = layer_shape(module)
            down, up = lora_pair(gen, out_f, in_f, rank, kernel)
            if module.weight.ndim == 4 and kernel is None:  # 1x1 conv (proj_in in SD1)
                down, up = down[:, :, None, None], up[:, :, None, None]
            key = prefix + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = down
            tensors[f"{key}.lora_up.weight"] = up
            tensors[f"{key}.alpha"] = torch.tensor(alpha)
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank)}
    return save_tensors(tensors, path, {**meta, "ss_network_alpha": str(alpha)})


def build_peft_sd1(path: Path, rank: int = 2) -> Path:
    """diffusers' save_lora_weights layout: `unet.<module>.lora_A.weight` / `lora_B` (no alpha)."""
    gen = torch.Generator().manual_seed(SEED + 101)
    tensors: dict[str, torch.Tensor] = {}
    targets = _targets("tiny-sd1")
    for part, prefix in (("unet", "unet."), ("te", "text_encoder.")):
        for name, module in targets[part].items():
            if module.weight.ndim != 2:
                continue
            out_f, in_f, _ = layer_shape(module)
            down, up = lora_pair(gen, out_f, in_f, rank)
            tensors[f"{prefix}{name}.lora_A.weight"] = down
            tensors[f"{prefix}{name}.lora_B.weight"] = up
    return save_tensors(tensors, path, {"format": "pt"})


def build_loha_sd1(path: Path, rank: int = 2, alpha: float = 1.0) -> Path:
    gen = torch.Generator().manual_seed(SEED + 102)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in _targets("tiny-sd1")["unet"].items():
        if module.weight.ndim != 2:
            continue
        out_f, in_f, _ = layer_shape(module)
        key = "lora_unet_" + name.replace(".", "_")
        for i in (1, 2):
            tensors[f"{key}.hada_w{i}_a"] = torch.randn(out_f, rank, generator=gen) * 0.1
            tensors[f"{key}.hada_w{i}_b"] = torch.randn(rank, in_f, generator=gen) * 0.1
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
    return save_tensors(tensors, path, {"ss_network_module": "lycoris.kohya"})


def build_lokr_sd1(path: Path) -> Path:
    gen = torch.Generator().manual_seed(SEED + 103)
    name = "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    tensors = {
        f"lora_unet_{name}.lokr_w1": torch.randn(4, 4, generator=gen),
        f"lora_unet_{name}.lokr_w2": torch.randn(8, 8, generator=gen),
        f"lora_unet_{name}.alpha": torch.tensor(1.0),
    }
    return save_tensors(tensors, path, {"ss_network_module": "lycoris.kohya"})


def build_kohya_sdxl(path: Path, rank: int = 4, alpha: float = 4.0) -> Path:
    """kohya SDXL LoRAs name UNet modules in the original layout (input_blocks_4_1_...)."""
    from dreamwire.backend.conditioning.ldm_names import diffusers_to_ldm_module

    gen = torch.Generator().manual_seed(SEED + 104)
    tensors: dict[str, torch.Tensor] = {}
    targets = _targets("tiny-sdxl")
    config = unet_config("tiny-sdxl")
    for name, module in targets["unet"].items():
        out_f, in_f, kernel = layer_shape(module)
        down, up = lora_pair(gen, out_f, in_f, rank, kernel)
        key = "lora_unet_" + diffusers_to_ldm_module(name, config).replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
    for name, module in targets["te"].items():
        out_f, in_f, _ = layer_shape(module)
        down, up = lora_pair(gen, out_f, in_f, rank)
        key = "lora_te1_" + name.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
    te2 = _text_hidden("tiny-sdxl", "text_encoder_2")
    down, up = lora_pair(gen, te2, te2, rank)
    key = "lora_te2_text_model_encoder_layers_0_self_attn_k_proj"
    tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up}
    tensors[f"{key}.alpha"] = torch.tensor(alpha)
    return save_tensors(
        tensors,
        path,
        {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0"},
    )


def build_hypernetwork(path: Path) -> Path:
    """A1111's hypernetwork .pt: {context_dim: [k_state, v_state], name, layer_structure, ...}."""
    dim = _text_hidden("tiny-sd1", "text_encoder")
    gen = torch.Generator().manual_seed(SEED + 105)

    def mlp() -> dict[str, torch.Tensor]:
        return {
            "linear.0.weight": torch.randn(dim * 2, dim, generator=gen) * 0.01,
            "linear.0.bias": torch.zeros(dim * 2),
            "linear.1.weight": torch.randn(dim, dim * 2, generator=gen) * 0.01,
            "linear.1.bias": torch.zeros(dim),
        }

    data = {
        dim: [mlp(), mlp()],
        "step": 0,
        "name": path.stem,
        "layer_structure": [1.0, 2.0, 1.0],
        "activation_func": "linear",
        "is_layer_norm": False,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


# --- embeddings ---------------------------------------------------------------------


def build_embeddings(folder: Path) -> dict[str, Path]:
    gen = torch.Generator().manual_seed(SEED + 200)
    dim = _text_hidden("tiny-sd1", "text_encoder")
    written = {}
    # A1111's own trainer writes exactly this dict (textual_inversion.Embedding.save).
    pt = folder / "bad-hands-5.pt"
    pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": torch.randn(2, dim, generator=gen)},
            "name": "bad-hands-5",
            "step": 1000,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
        },
        pt,
    )
    written["bad-hands-5"] = pt
    written["EasyNegative"] = save_tensors(
        {"emb_params": torch.randn(3, dim, generator=gen)}, folder / "EasyNegative.safetensors"
    )
    written["negativeXL_D"] = save_tensors(
        {
            "clip_l": torch.randn(2, _text_hidden("tiny-sdxl", "text_encoder"), generator=gen),
            "clip_g": torch.randn(2, _text_hidden("tiny-sdxl", "text_encoder_2"), generator=gen),
        },
        folder / "negativeXL_D.safetensors",
    )
    return written


def build(root: Path | str) -> dict[str, Path]:
    models = Path(root) / "models"
    written = build_controlnets(models / "ControlNet")
    from dreamwire.backend.tiny import union  # ControlNet Union (xinsir layout) for tiny SDXL

    written.update(union.build(models / "ControlNet"))
    from dreamwire.backend.tiny import t2i_adapter  # T2I-Adapters for tiny SD1 and SDXL

    written.update(t2i_adapter.build(models / "ControlNet"))
    from dreamwire.backend.tiny import ip_adapter  # IP-Adapters and CLIP vision encoders

    written.update(ip_adapter.build(models))
    lora = models / "Lora"
    written["tiny_style"] = build_kohya_sd1(lora / "tiny_style.safetensors")
    written["tiny_peft"] = build_peft_sd1(lora / "tiny_peft.safetensors")
    written["tiny_loha"] = build_loha_sd1(lora / "tiny_loha.safetensors")
    written["tiny_lokr"] = build_lokr_sd1(lora / "tiny_lokr.safetensors")
    written["tiny_xl_style"] = build_kohya_sdxl(lora / "tiny_xl_style.safetensors")
    written["tiny_hypernet"] = build_hypernetwork(lora / "tiny_hypernet.pt")
    from dreamwire.backend.tiny import lcm_lora  # so Live's LCM path runs for real

    written.update(lcm_lora.build(lora))
    written.update(build_embeddings(models / "embeddings"))
    return written
