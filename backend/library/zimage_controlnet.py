"""Telling Alibaba PAI's Z-Image Fun ControlNets (Union) apart from their headers, and their
diffusers config (ZImageControlNetModel) from shapes.

The files (Z-Image-Turbo-Fun-Controlnet-Union.safetensors, -2.0, -2.1; ComfyUI keeps them
in models/model_patches) are diffusers' own module names: `control_all_x_embedder.2-1`
(the control latents' patch embedding), `control_layers.N` (control blocks with
`before_proj` on the first and `after_proj` on each) and `control_noise_refiner.N`.
diffusers' single-file converter passes them through; its config comes from a hub
repository, so Dreamwire derives it here from the shapes and the base transformer:

- version 1: a few control layers spread evenly over the transformer's (6 of 30: every
  5th), control latents only (16 channels), its noise-refiner copies plain Z-Image blocks
  (`add_control_noise_refiner` None);
- 2.0: 15 control layers (every 2nd), 33 input channels (control latents, the inpaint mask
  and the masked picture's latents); its refiner copies are untrained (zero `before_proj`,
  or none) and diffusers drops them (`"control_layers"`: the control layers' first hints
  also go to the noise refiner);
- 2.1: the same with trained control refiner blocks (`"control_noise_refiner"`).

The places are not in the file: the control layers are spread over the transformer's
layers at an even stride (i * n_layers // count), which is what every released version
does, and the refiner hints go to the refiner layers in order.
"""

from __future__ import annotations

import re

EMBEDDER = "control_all_x_embedder."
# diffusers' own test for the 2.x files (single_file_utils "z-image-turbo-controlnet-2.x").
V2_LAYER = "control_layers.14.adaLN_modulation.0.weight"
REFINER_BEFORE = "control_noise_refiner.0.before_proj.weight"


def layout(keys: set[str]) -> str | None:
    """ "zimage_fun" for a Fun ControlNet single file, else None."""
    return "zimage_fun" if any(k.startswith(EMBEDDER) for k in keys) else None


def is_folder_config(cfg: dict) -> bool:
    return cfg.get("_class_name") == "ZImageControlNetModel"


def _count(shapes, prefix: str) -> int:
    found = {int(m[1]) for k in shapes if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _patches(shapes) -> list[tuple[int, int, str]]:
    found = []
    for k in shapes:
        m = re.fullmatch(rf"{re.escape(EMBEDDER)}(\d+)-(\d+)\.weight", k)
        if m:
            found.append((int(m[1]), int(m[2]), k))
    if not found:
        raise KeyError(f"{EMBEDDER}P-F.weight")
    return sorted(found)


def refiner_mode(shapes, before_proj_is_zero: bool | None) -> str | None:
    """diffusers' add_control_noise_refiner for a file: None (version 1), "control_layers"
    (2.0) or "control_noise_refiner" (2.1). `before_proj_is_zero`: whether the first
    refiner block's before_proj holds only zeros (None where it has none)."""
    if V2_LAYER not in shapes:
        return None
    if before_proj_is_zero is None or before_proj_is_zero:
        return "control_layers"
    return "control_noise_refiner"


def config_from_shapes(shapes: dict, base: dict, mode: str | None = None) -> dict:
    """ZImageControlNetModel's config; `base` is the transformer's (its layer counts and
    norm epsilon; empty when only identifying), `mode` refiner_mode's answer."""
    patches = _patches(shapes)
    p, f, key = patches[0]
    dim, fan_in = shapes[key]
    norm_q = shapes.get("control_layers.0.attention.norm_q.weight")
    head_dim = int(norm_q[0]) if norm_q else int(dim) // int(base.get("n_heads", 1))
    count = _count(shapes, "control_layers")
    layers = int(base.get("n_layers", count))
    stride = max(layers // count, 1) if count else 1
    refiners = _count(shapes, "control_noise_refiner") or int(base.get("n_refiner_layers", 2))
    return {
        "control_layers_places": [i * stride for i in range(count)],
        "control_refiner_layers_places": list(range(int(base.get("n_refiner_layers", refiners)))),
        "control_in_dim": int(fan_in) // (p * p * f),
        "add_control_noise_refiner": mode,
        "all_patch_size": [q for q, _, _ in patches],
        "all_f_patch_size": [g for _, g, _ in patches],
        "dim": int(dim),
        "n_refiner_layers": refiners,
        "n_heads": int(dim) // head_dim,
        "n_kv_heads": int(dim) // head_dim,
        "norm_eps": float(base.get("norm_eps", 1e-5)),
        "qk_norm": norm_q is not None,
    }
