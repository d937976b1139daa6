"""What diffusers' IP-Adapter loader (UNet2DConditionLoadersMixin._load_ip_adapter_weights)
changes on a UNet, saved before a job and put back exactly after it.

The loader changes:
  * every attention processor (IPAdapterAttnProcessor2_0 on cross-attention, fresh plain
    processors on self-attention);
  * `encoder_hid_proj`: set to a MultiIPAdapterImageProjection, which nn.Module registers
    in `_modules`. Assigning the old `None` back leaves a `None` entry in `_modules` where
    the UNet had a plain attribute; torch.compile's guards look the attribute up where it
    was traced (`KeyError on self.encoder_hid_proj`), so the next plain job would recompile
    the whole UNet. Each attribute goes back to the very slot it lived in;
  * `text_encoder_hid_proj`, added when the UNet already had a text projection (Kolors;
    check_loaded refuses such UNets today, so this only keeps the restore complete);
  * the config's `encoder_hid_dim_type`, written as an attribute of the FrozenDict (its
    items stay as they were).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from torch import nn

# The UNet attributes the loader assigns.
ATTRIBUTES = ("encoder_hid_proj", "text_encoder_hid_proj")


class Place(Enum):
    MODULES = "modules"  # a registered submodule, or a None in its slot
    ATTRIBUTE = "attribute"  # a plain instance attribute
    ABSENT = "absent"


@dataclass(frozen=True)
class Slot:
    """One attribute of a module: where it lived and the object it held."""

    name: str
    place: Place
    value: Any = None

    @classmethod
    def of(cls, module: nn.Module, name: str) -> Slot:
        if name in module._modules:
            return cls(name, Place.MODULES, module._modules[name])
        if name in module.__dict__:
            return cls(name, Place.ATTRIBUTE, module.__dict__[name])
        return cls(name, Place.ABSENT)

    def put_back(self, module: nn.Module) -> None:
        # Written to the dicts directly: nn.Module.__setattr__ keeps a name in `_modules`
        # once it is there, which is the very change being undone.
        module.__dict__.pop(self.name, None)
        if self.place is Place.MODULES:
            module._modules[self.name] = self.value  # same key: same place in the order
            return
        module._modules.pop(self.name, None)
        if self.place is Place.ATTRIBUTE:
            module.__dict__[self.name] = self.value


@dataclass(frozen=True)
class SavedUNet:
    processors: dict[str, Any]
    slots: tuple[Slot, ...]
    config: dict[str, Any]  # the config object's attributes (what the loader writes)

    @classmethod
    def of(cls, unet: nn.Module) -> SavedUNet:
        return cls(
            processors=dict(unet.attn_processors),
            slots=tuple(Slot.of(unet, name) for name in ATTRIBUTES),
            config=dict(vars(unet.config)),
        )

    def restore(self, unet: nn.Module) -> None:
        # The projections first: a plus adapter's resampler has attention layers of its
        # own, which set_attn_processor would otherwise count among the UNet's.
        for slot in self.slots:
            slot.put_back(unet)
        unet.set_attn_processor(dict(self.processors))  # it pops from the dict it gets
        attributes = vars(unet.config)
        attributes.clear()
        attributes.update(self.config)
