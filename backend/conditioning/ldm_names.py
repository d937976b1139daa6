"""UNet module names in the original (LDM/SGM) layout, for files that use them.

kohya's SD1 LoRAs name UNet modules the diffusers way (`down_blocks_0_attentions_0_...`),
but its SDXL LoRAs and A1111-converted files use the original layout
(`input_blocks_4_1_transformer_blocks_0_...`). Both resolve to the same diffusers module.
"""

from __future__ import annotations

from dreamwire.backend.library.ldm_layout import UNET_PREFIX, unet_to_ldm


def diffusers_to_ldm_module(name: str, unet_config: dict) -> str:
    """`down_blocks.1.attentions.0.proj_in` -> `input_blocks.4.1.proj_in` (for this UNet)."""
    (key,) = unet_to_ldm({f"{name}.weight": None}, dict(unet_config))
    return key.removeprefix(UNET_PREFIX).removesuffix(".weight")


def ldm_aliases(module_names: list[str], unet_config: dict) -> dict[str, str]:
    """LDM name -> diffusers name for every module that has one."""
    out = {}
    for name in module_names:
        try:
            out[diffusers_to_ldm_module(name, unet_config)] = name
        except KeyError:
            continue
    return out
