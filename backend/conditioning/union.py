"""ControlNet Union (xinsir's controlnet-union-sdxl-1.0 and its ProMax variant): one model,
a control type chosen per unit.

Files. xinsir ships diffusers weights (config.json + diffusion_pytorch_model.safetensors);
A1111/Forge users drop that one .safetensors file into models/ControlNet. A file is a union
model when it has the union's own parts (`task_embedding`, `control_add_embedding`,
`transformer_layes` [sic], `spatial_ch_projs`); ProMax has the same keys with room for 8
control types instead of 6 (`task_embedding` is 8 x 320, `control_add_embedding`'s input
8 x 256). A single file has no config: it is the base UNet's ControlNet config (as for any
ControlNet) plus the union's sizes read from the shapes; num_trans_head is not in the
shapes and is xinsir's 8.

Control types. diffusers' ControlNetUnionModel takes `control_mode` indices; xinsir's
ControlNetPlus (and the A1111 extension's ControlNetUnionControlType, in the same order)
define them as:

    0 openpose   1 depth   2 hed/pidi/scribble/ted (soft edge)
    3 canny/lineart/anime_lineart/mlsd (hard edge)   4 normal   5 segment   6 tile
    7 repaint/inpaint (ProMax only)

Dreamwire's unit types map onto them in UNION_MODES; shuffle and ip2p have no union mode.
For the repaint mode xinsir's example sets the pixels to repaint to 0 (black); the unit's
inpaint tensor marks them -1 (ControlNet 1.1's convention), so they are clamped to 0.

Running. All units of a job that name the same union model (and share the A1111 control
mode, so that one soft/cond-only rule applies to their sum) run as one union call with
several images and modes, exactly as diffusers' StableDiffusionXLControlNetUnionPipeline
calls ControlNetUnionModel: `control_type` is the one-hot sum of the group's modes, each
image gets its unit's weight as its conditioning scale (with one image the model scales its
residuals instead; with several it scales each image's features and task token before
they are fused), and a unit outside its guidance window keeps its place in the call with
scale 0, as diffusers' `controlnet_keep` does. The window is A1111's rule (stack
docstring in controlnet.py); a group with no active unit is skipped for that step. The
group is one entry of the ControlNet stack, so it mixes with ordinary ControlNets (the
residuals add up) and takes the A1111 control mode (soft injection, cond-only) on its
output.
"""

from __future__ import annotations

import inspect as pyinspect
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .controlnet import ControlNetStack, StackUnit
from .controlnet_files import ControlNetInfo

LAYOUTS = ("union", "union_folder")
PLAIN_TYPES, PROMAX_TYPES = 6, 8
TRANS_HEADS = 8  # xinsir's num_trans_head: the shapes do not tell it
REPAINT = 7

# Dreamwire unit type -> xinsir's control_mode index.
UNION_MODES = {
    "openpose": 0,
    "depth": 1,
    "softedge": 2,
    "scribble": 2,
    "canny": 3,
    "lineart": 3,
    "lineart_anime": 3,
    "mlsd": 3,
    "normalbae": 4,
    "seg": 5,
    "tile": 6,
    "inpaint": REPAINT,
}
MODE_NAMES = (
    "openpose",
    "depth",
    "hed/pidi/scribble/ted",
    "canny/lineart/anime_lineart/mlsd",
    "normal",
    "segment",
    "tile",
    "repaint",
)
UNION_KEYS = ("task_embedding", "control_add_embedding", "transformer_layes", "spatial_ch_projs")


def is_union(info) -> bool:
    return isinstance(info, ControlNetInfo) and info.layout in LAYOUTS


def is_union_config(cfg: dict) -> bool:
    return cfg.get("_class_name") == "ControlNetUnionModel" or "num_control_type" in cfg


def num_types(info) -> int:
    return int(info.detail.get("num_control_type", PLAIN_TYPES))


def describe(info, shapes: dict[str, tuple[int, ...]]) -> None:
    """The union's sizes from a single file's shapes (the rest is read as a diffusers
    ControlNet by controlnet_files)."""
    info.type = None  # a union model's type is chosen per unit
    task = shapes.get("task_embedding")
    if task is None or len(task) != 2:
        info.detail["error"] = "no task_embedding"
        return
    layers = {int(m[1]) for k in shapes if (m := re.match(r"transformer_layes\.(\d+)\.", k))}
    proj = shapes.get("spatial_ch_projs.weight", (task[1],))
    info.detail.update(
        num_control_type=int(task[0]),
        num_trans_channel=int(task[1]),
        num_trans_layer=len(layers) or 1,
        num_proj_channel=int(proj[0]),
        promax=int(task[0]) >= PROMAX_TYPES,
    )


def describe_folder(info, cfg: dict) -> None:
    info.layout = "union_folder"
    info.type = None
    n = int(cfg.get("num_control_type", PLAIN_TYPES))
    info.detail.update(num_control_type=n, promax=n >= PROMAX_TYPES)


def control_mode(unit_type: str, info, where: str) -> int:
    """xinsir's control_mode index for a unit type, or a clear MODEL_UNSUPPORTED."""
    index = UNION_MODES.get(unit_type)
    if index is None:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: {info.name} is a ControlNet Union model, which has no {unit_type} mode "
            f"(it runs {', '.join(sorted(UNION_MODES))}); pick a {unit_type} ControlNet",
        )
    n = num_types(info)
    if index >= n:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: {info.name} is a ControlNet Union model with {n} control types; "
            f"{unit_type} ({MODE_NAMES[index]}, mode {index}) needs the ProMax variant",
        )
    return index


# --- loading ------------------------------------------------------------------------


def union_init_args(config: dict, cls=None) -> dict:
    """The entries of a ControlNetModel config that ControlNetUnionModel takes."""
    if cls is None:
        from diffusers import ControlNetUnionModel as cls
    params = pyinspect.signature(cls.__init__).parameters
    return {k: v for k, v in config.items() if k in params and k != "self"}


def single_file_config(unet_config: dict, info) -> dict:
    from .controlnet_files import controlnet_config

    d = info.detail
    config = union_init_args(controlnet_config(unet_config, info))
    config.update(
        num_control_type=d["num_control_type"],
        num_trans_channel=d["num_trans_channel"],
        num_trans_head=TRANS_HEADS,
        num_trans_layer=d["num_trans_layer"],
        num_proj_channel=d["num_proj_channel"],
    )
    return config


def load(info, unet_config: dict, dtype: torch.dtype, device) -> Any:
    """A diffusers ControlNetUnionModel on `device`, without any network access."""
    from diffusers import ControlNetUnionModel

    try:
        if info.layout == "union_folder":
            net = ControlNetUnionModel.from_pretrained(
                info.path, local_files_only=True, torch_dtype=dtype
            )
        else:
            if "error" in info.detail:
                raise DreamwireError(
                    ErrorCode.MODEL_CORRUPT,
                    f"ControlNet Union {info.name}: {info.detail['error']}",
                )
            net = _load_single_file(info, single_file_config(unet_config, info))
    except DreamwireError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"ControlNet Union {info.name} could not be loaded: {exc}"
        ) from None
    if net.dtype != dtype:
        net = net.to(dtype=dtype)
    net.to(device=device).eval().requires_grad_(False)
    return net


def _load_single_file(info, config: dict):
    from diffusers import ControlNetUnionModel

    from . import files
    from .controlnet_files import pickled_state_dict

    state = (
        pickled_state_dict(info.path)
        if info.pickled
        else files.load_tensors(info.path, "ControlNet")
    )
    # Built on the meta device and given the file's tensors: no random init of a 2.5 GB model.
    with torch.device("meta"):
        net = ControlNetUnionModel.from_config(config)
    missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"ControlNet Union {info.name}: {len(missing)} missing and {len(unexpected)} "
            f"unexpected weights (first: {(list(missing) + list(unexpected))[0]})",
        )
    return net


# --- running ------------------------------------------------------------------------


@dataclass
class Member:
    unit: StackUnit  # the unit's weight and window (its mode is the group's)
    image: torch.Tensor  # (1, C, H, W) at the pass size
    mode: int  # xinsir's control_mode index


@dataclass
class GroupUnit(StackUnit):
    """The stack's view of a union group: on while any member is; weight 1 because the
    members' weights go into the union call."""

    members: list[Member] = field(default_factory=list)

    def active(self, fraction: float) -> bool:
        return any(m.unit.active(fraction) and m.unit.weight != 0 for m in self.members)


class UnionGroup(nn.Module):
    """One ControlNetUnionModel call for several units, shaped like a ControlNetModel for
    the stack. The images are the group's own: the one the pipeline prepares for this slot
    (the first member's) is the same tensor repeated over the batch, as here."""

    def __init__(self, net: nn.Module, members: list[Member]):
        super().__init__()
        self.net = net
        self.members = members
        self.fraction = 0.0  # set by ControlStack before each call

    @property
    def config(self):  # the pipeline reads global_pool_conditions from its first net
        return self.net.config

    @property
    def modes(self) -> list[int]:
        return [m.mode for m in self.members]

    def scales(self) -> list[float]:
        return [m.unit.weight if m.unit.active(self.fraction) else 0.0 for m in self.members]

    # The fast path compiles every net of the stack. A group is made afresh for each pass and
    # holds Python-side state (members, windows), so compiling it would recompile every job;
    # it runs eagerly instead (the UNet, the bulk of the work, stays compiled).
    @torch.compiler.disable
    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        class_labels=None,
        timestep_cond=None,
        attention_mask=None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        guess_mode: bool = False,
        return_dict: bool = True,
    ):
        n = sample.shape[0]
        images = [
            m.image.to(device=sample.device, dtype=self.net.dtype).repeat(n, 1, 1, 1)
            for m in self.members
        ]
        one_hot = torch.zeros(self.net.config.num_control_type)
        one_hot = one_hot.scatter_(0, torch.tensor(self.modes), 1)
        control_type = one_hot.reshape(1, -1).to(sample.device, sample.dtype).repeat(n, 1)
        return self.net(
            sample=sample,
            timestep=timestep,
            encoder_hidden_states=encoder_hidden_states,
            controlnet_cond=images,
            control_type=control_type,
            control_type_idx=self.modes,
            conditioning_scale=[conditioning_scale * s for s in self.scales()],
            class_labels=class_labels,
            timestep_cond=timestep_cond,
            attention_mask=attention_mask,
            added_cond_kwargs=added_cond_kwargs,
            cross_attention_kwargs=cross_attention_kwargs,
            guess_mode=guess_mode,
            return_dict=return_dict,
        )


class ControlStack(ControlNetStack):
    """The ControlNet stack, telling union groups the step fraction before each call."""

    def forward(self, *args, **kwargs):
        fraction = self.fraction()
        for net in self.nets:
            if isinstance(net, UnionGroup):
                net.fraction = fraction
        return super().forward(*args, **kwargs)


def fold(
    infos: list, unit_types: list[str], nets: list, units: list[StackUnit], images: list
) -> tuple[list, list[StackUnit], list]:
    """Replace the union units of a pass (one entry per job unit) by one UnionGroup per
    (union model, control mode, forced soft injection), at its first unit's place."""
    out_nets: list = []
    out_units: list[StackUnit] = []
    out_images: list = []
    groups: dict[tuple, GroupUnit] = {}
    for i, (info, net, unit, image) in enumerate(zip(infos, nets, units, images, strict=True)):
        if not is_union(info):
            out_nets.append(net)
            out_units.append(unit)
            out_images.append(image)
            continue
        mode = control_mode(unit_types[i], info, f"control unit {i} ({unit_types[i]})")
        if mode == REPAINT:
            image = image.clamp(min=0)  # xinsir: pixels to repaint are black, not -1
        key = (str(info.path), unit.mode, unit.force_soft)
        member = Member(unit, image, mode)
        if key in groups:
            groups[key].members.append(member)
            continue
        group_unit = GroupUnit(
            weight=1.0,
            start=0.0,
            end=1.0,
            mode=unit.mode,
            force_soft=unit.force_soft,
            members=[member],
        )
        groups[key] = group_unit
        out_nets.append(UnionGroup(net, group_unit.members))
        out_units.append(group_unit)
        out_images.append(image)
    return out_nets, out_units, out_images
