"""Per-block IP-Adapter scales for the Style and Composition units (InstantStyle).

Krita AI Diffusion's "Style" and "Composition" control layers run the Reference layer's
IP-Adapter through ComfyUI_IPAdapter_plus with weight_type "style transfer" and
"composition" (ai_diffusion/backend/workflow.py). IPAdapter_plus (IPAdapterPlus.py,
ipadapter_execute) then gives the adapter's weight only to some attention blocks, keyed by
ComfyUI's `transformer_index`: the number of the SpatialTransformer in execution order
(input blocks, middle block, output blocks; 16 on SD1.x/SD2.x, 11 on SDXL). Blocks outside
the table get nothing.

diffusers numbers the same modules as `down_blocks.i.attentions.j`, `mid_block.attentions.0`,
`up_blocks.i.attentions.j` in the same order, so the tables translate one to one. On SDXL
they are exactly InstantStyle's maps in diffusers' docs, `set_ip_adapter_scale({"up":
{"block_0": [0.0, 1.0, 0.0]}})` for style and `{"down": {"block_2": [0.0, 1.0]}}` for
composition (tests/conditioning/test_ip_adapter_blocks.py checks this against diffusers'
own expansion).
"""

from __future__ import annotations

from dreamwire.backend.families import spec_for
from dreamwire.shared.errors import DreamwireError, ErrorCode

REFERENCE = "ip-adapter"
STYLE = "ip-adapter-style"
COMPOSITION = "ip-adapter-composition"
# Unit type -> IPAdapter_plus weight_type (Krita AI Diffusion's mapping of its layers).
WEIGHT_TYPES = {REFERENCE: "linear", STYLE: "style transfer", COMPOSITION: "composition"}
TYPES = tuple(WEIGHT_TYPES)

# IPAdapter_plus ipadapter_execute: transformer_index -> factor of the unit weight.
_SD_STYLE = (0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15)
TABLES: dict[tuple[str, str], dict[int, float]] = {
    ("sdxl", "style transfer"): {6: 1.0},
    ("sdxl", "composition"): {3: 1.0},
    ("sd", "style transfer"): {i: 1.0 for i in _SD_STYLE},
    ("sd", "composition"): {4: 0.25, 5: 1.0},
}


def file_type(unit_type: str) -> str:
    """The file type a unit runs: every IP-Adapter mode runs an IP-Adapter file."""
    return REFERENCE if unit_type in WEIGHT_TYPES else unit_type


def attention_blocks(config) -> list[str]:
    """The UNet's cross-attention transformer modules in execution order (ComfyUI's
    transformer_index order), from its diffusers config."""
    config = dict(config)
    downs = list(config["down_block_types"])
    ups = list(config["up_block_types"])
    per = config.get("layers_per_block", 2)
    per = list(per) if isinstance(per, list | tuple) else [per] * len(downs)
    out = []
    for i, kind in enumerate(downs):
        if "CrossAttn" in kind:
            out += [f"down_blocks.{i}.attentions.{j}" for j in range(per[i])]
    if "CrossAttn" in str(config.get("mid_block_type", "UNetMidBlock2DCrossAttn")):
        out.append("mid_block.attentions.0")
    rev = list(reversed(per))
    for i, kind in enumerate(ups):
        if "CrossAttn" in kind:
            out += [f"up_blocks.{i}.attentions.{j}" for j in range(rev[i] + 1)]
    return out


def block_factors(unit_type: str, family: str, config) -> dict[str, float] | None:
    """{attention module: factor of the weight} for a Style/Composition unit on this UNet
    (modules not listed get 0); None for a Reference unit (every block, factor 1).
    MODEL_UNSUPPORTED when none of the table's blocks is in this UNet (a pruned layout)."""
    weight_type = WEIGHT_TYPES[unit_type]
    if weight_type == "linear":
        return None
    spec = spec_for(family)
    table = TABLES[(spec.unet_blocks, weight_type)]
    blocks = attention_blocks(config)
    factors = {blocks[i]: f for i, f in table.items() if i < len(blocks)}
    if not factors:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{unit_type}: IPAdapter_plus's {weight_type!r} blocks (attention blocks "
            f"{', '.join(map(str, sorted(table)))} of the {spec.label}"
            f" UNet) are not in this UNet, which has {len(blocks)}; use an ip-adapter unit",
        )
    return factors


def factor(factors: dict[str, float] | None, processor_name: str) -> float:
    """The factor for one attention processor (`...attentions.1.transformer_blocks.0.attn2.
    processor`): its transformer module's, 0 outside the map."""
    if factors is None:
        return 1.0
    for prefix, f in factors.items():
        if processor_name.startswith(prefix + "."):
            return f
    return 0.0
