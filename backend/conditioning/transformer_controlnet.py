"""What every transformer family's ControlNet module shares (flux_controlnet, sd3_controlnet,
qwen_controlnet, zimage_controlnet): the width check against the base transformer, loading
a net offline from a folder or a single file, and how a read error is worded. One copy, so
that a file that does not fit or does not load is reported alike for every family."""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import files


def reason(exc: Exception) -> str:
    """What a read error says (a KeyError: the tensor that is missing)."""
    if not exc.args:
        return type(exc).__name__
    return f"no {exc.args[0]}" if isinstance(exc, KeyError) else str(exc.args[0])


def width_problems(net: tuple[int, int | None], base: tuple[int | None, int | None]) -> list[str]:
    """The (hidden width, text width) differences between a transformer ControlNet and its
    base transformer, as every kind's mismatch() words them; a net without a text stream
    (text width None) fits any."""
    (inner, text), (base_inner, base_text) = net, base
    problems = []
    if inner != base_inner:
        problems.append(f"hidden width {inner} vs {base_inner}")
    if text is not None and text != base_text:
        problems.append(f"text width {text} vs {base_text}")
    return problems


def load_net(
    cls, info, make_config, label: str, dtype: torch.dtype, device, convert=None, state=None
) -> Any:
    """A transformer ControlNet of diffusers class `cls`: from its folder, or a single file
    whose config `make_config(shapes)` derives, its keys put in diffusers' layout by
    `convert(state)` where they are not (XLabs' files); `state`: the file's tensors where
    the caller has read them already."""
    try:
        if info.layout.endswith("_folder"):
            net = cls.from_pretrained(info.path, local_files_only=True, torch_dtype=dtype)
        else:
            if state is None:
                state = files.load_tensors(info.path, "ControlNet")
            config = make_config({k: tuple(v.shape) for k, v in state.items()})
            if convert is not None:
                state = convert(state)
            # Built on the meta device and given the file's tensors: no random init of a
            # multi-GB model.
            with torch.device("meta"):
                net = cls.from_config(config)
            missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
            if missing or unexpected:
                raise DreamwireError(
                    ErrorCode.MODEL_CORRUPT,
                    f"{label} ControlNet {info.name}: {len(missing)} missing and "
                    f"{len(unexpected)} unexpected weights "
                    f"(first: {(list(missing) + list(unexpected))[0]})",
                )
    except DreamwireError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{label} ControlNet {info.name} could not be loaded: {reason(exc)}",
        ) from None
    if net.dtype != dtype:
        net = net.to(dtype=dtype)
    net.to(device=device).eval().requires_grad_(False)
    return net
