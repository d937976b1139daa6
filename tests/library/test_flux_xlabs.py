"""XLabs' Flux ControlNet files <-> diffusers' FluxControlNetModel (library/flux_xlabs.py):
the tiny file has exactly the keys of x-flux's ControlNetFlux, every key converts and comes
back unchanged, the converted model's block samples equal x-flux's forward written out here
from its equations (BFL's DoubleStreamBlock, rope, timestep embedding, the pixel hint
encoder), and malformed files name what is wrong."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dreamwire.backend.library import flux_xlabs
from dreamwire.backend.tiny import flux_controlnet as tiny_cn

DEPTH = 2  # the tiny net's double blocks, as XLabs' v3 nets' controlnet_depth


@pytest.fixture(scope="module")
def net():
    return tiny_cn.flux_controlnet(seed=11, xlabs=True)


@pytest.fixture(scope="module")
def xlabs(net):
    return flux_xlabs.from_diffusers(dict(net.state_dict()))


def xflux_keys(depth: int) -> set[str]:
    """The state dict names of x-flux's ControlNetFlux (src/flux/controlnet.py) for a
    guidance-distilled base: its modules listed by hand, not by the converter."""
    linear = ("weight", "bias")
    names = {f"{m}.{p}" for m in ("img_in", "txt_in", "pos_embed_input") for p in linear}
    for m in ("time_in", "vector_in", "guidance_in"):
        names |= {f"{m}.{layer}.{p}" for layer in ("in_layer", "out_layer") for p in linear}
    for i in range(depth):
        names |= {f"controlnet_blocks.{i}.{p}" for p in linear}
        for s in ("img", "txt"):
            b = f"double_blocks.{i}.{s}_"
            for m in ("mod.lin", "attn.qkv", "attn.proj", "mlp.0", "mlp.2"):
                names |= {f"{b}{m}.{p}" for p in linear}
            names |= {f"{b}attn.norm.{n}_norm.scale" for n in ("query", "key")}
    names |= {f"input_hint_block.{i}.{p}" for i in range(0, 15, 2) for p in linear}
    return names


def test_the_tiny_file_has_x_flux_keys_and_every_key_round_trips(net, xlabs):
    assert set(xlabs) == xflux_keys(DEPTH)
    state = dict(net.state_dict())
    back = flux_xlabs.to_diffusers(xlabs)
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    shapes = {k: tuple(v.shape) for k, v in xlabs.items()}
    flux_xlabs.check_shapes(shapes)
    cfg = flux_xlabs.config(shapes, {"axes_dims_rope": [4, 6, 6]})
    assert {k: cfg[k] for k in ("num_layers", "num_single_layers", "patch_size")} == {
        "num_layers": DEPTH,
        "num_single_layers": 0,
        "patch_size": 2,
    }


# --- x-flux's forward, from its equations (BFL's flux/modules/layers.py) -----------------
def _timestep(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    t = 1000.0 * t
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _mlp(w: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    h = F.silu(F.linear(x, w[f"{name}.in_layer.weight"], w[f"{name}.in_layer.bias"]))
    return F.linear(h, w[f"{name}.out_layer.weight"], w[f"{name}.out_layer.bias"])


def _rope(ids: torch.Tensor, axes: list[int]) -> torch.Tensor:
    parts = []
    for i, dim in enumerate(axes):
        omega = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        out = ids[..., i].double()[..., None] * omega
        rot = torch.stack([out.cos(), -out.sin(), out.sin(), out.cos()], dim=-1)
        parts.append(rot.reshape(*rot.shape[:-1], 2, 2).float())
    return torch.cat(parts, dim=-3)[:, None]  # B 1 L D/2 2 2


def _apply_rope(x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
    x_ = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    out = pe[..., 0] * x_[..., 0] + pe[..., 1] * x_[..., 1]
    return out.reshape(*x.shape)


def _rms(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-6) * scale


def _double_block(w, b, img, txt, vec, pe, heads):
    def lin(name, x):
        return F.linear(x, w[f"{b}.{name}.weight"], w[f"{b}.{name}.bias"])

    mods, qkvs = {}, {}
    for s, x in (("img", img), ("txt", txt)):
        mods[s] = lin(f"{s}_mod.lin", F.silu(vec))[:, None].chunk(6, dim=-1)
        shift, scale, _ = mods[s][:3]
        x = (1 + scale) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + shift
        B, L, _ = x.shape
        q, k, v = lin(f"{s}_attn.qkv", x).reshape(B, L, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q = _rms(q, w[f"{b}.{s}_attn.norm.query_norm.scale"])
        k = _rms(k, w[f"{b}.{s}_attn.norm.key_norm.scale"])
        qkvs[s] = (q, k, v)
    q, k, v = (torch.cat([qkvs["txt"][i], qkvs["img"][i]], dim=2) for i in range(3))
    q, k = _apply_rope(q, pe), _apply_rope(k, pe)
    attn = F.scaled_dot_product_attention(q, k, v)
    attn = attn.permute(0, 2, 1, 3).reshape(attn.shape[0], attn.shape[2], -1)
    n = txt.shape[1]
    out = {}
    for s, x, a in (("img", img, attn[:, n:]), ("txt", txt, attn[:, :n])):
        shift1, scale1, gate1, shift2, scale2, gate2 = mods[s]
        x = x + gate1 * lin(f"{s}_attn.proj", a)
        h = (1 + scale2) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + shift2
        x = x + gate2 * lin(f"{s}_mlp.2", F.gelu(lin(f"{s}_mlp.0", h), approximate="tanh"))
        out[s] = x
    return out["img"], out["txt"]


def xflux_forward(w, img, img_ids, hint, txt, txt_ids, t, y, guidance, axes, heads):
    """ControlNetFlux.forward: its block residuals, before x-flux's controlnet_gs scale."""
    img = F.linear(img, w["img_in.weight"], w["img_in.bias"])
    for i in range(0, 15, 2):
        stride = 2 if i in (4, 8, 12) else 1
        hint = F.conv2d(
            hint, w[f"input_hint_block.{i}.weight"], w[f"input_hint_block.{i}.bias"], stride, 1
        )
        hint = F.silu(hint) if i < 14 else hint
    B, C, H, W = hint.shape  # "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph = pw = 2
    hint = hint.reshape(B, C, H // 2, 2, W // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * 4)
    img = img + F.linear(hint, w["pos_embed_input.weight"], w["pos_embed_input.bias"])
    vec = _mlp(w, "time_in", _timestep(t)) + _mlp(w, "guidance_in", _timestep(guidance))
    vec = vec + _mlp(w, "vector_in", y)
    txt = F.linear(txt, w["txt_in.weight"], w["txt_in.bias"])
    pe = _rope(torch.cat([txt_ids, img_ids], dim=1), axes)
    samples = []
    for i in range(DEPTH):
        img, txt = _double_block(w, f"double_blocks.{i}", img, txt, vec, pe, heads)
        samples.append(
            F.linear(img, w[f"controlnet_blocks.{i}.weight"], w[f"controlnet_blocks.{i}.bias"])
        )
    return samples


def test_converted_model_equals_x_flux_equations(xlabs):
    from diffusers import FluxControlNetModel

    base = tiny_cn.transformer_config()
    shapes = {k: tuple(v.shape) for k, v in xlabs.items()}
    model = FluxControlNetModel.from_config(flux_xlabs.config(shapes, base)).eval()
    model.load_state_dict(flux_xlabs.to_diffusers(dict(xlabs)), strict=True)
    g = torch.Generator().manual_seed(0)
    side = 4  # 64 px: 4 x 4 packed latent tokens
    img = torch.randn(1, side * side, 64, generator=g)
    hint = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    txt = torch.randn(1, 7, base["joint_attention_dim"], generator=g)
    y = torch.randn(1, base["pooled_projection_dim"], generator=g)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    img_ids = img_ids.reshape(-1, 3)
    txt_ids = torch.zeros(7, 3)
    t, guidance = torch.tensor([0.7]), torch.tensor([3.5])
    with torch.no_grad():
        blocks, singles = model(
            hidden_states=img,
            controlnet_cond=hint,
            conditioning_scale=1.0,
            encoder_hidden_states=txt,
            pooled_projections=y,
            timestep=t,
            img_ids=img_ids,
            txt_ids=txt_ids,
            guidance=guidance,
            return_dict=False,
        )
        expected = xflux_forward(
            xlabs,
            img,
            img_ids[None],
            hint,
            txt,
            txt_ids[None],
            t,
            y,
            guidance,
            base["axes_dims_rope"],
            base["num_attention_heads"],
        )
    assert singles is None and len(blocks) == DEPTH
    for got, want in zip(blocks, expected, strict=True):
        assert want.abs().max() > 0.1  # the samples carry the control, not zeros
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.pop("input_hint_block.14.weight"), "input_hint_block.14.weight"),
        (lambda s: s.update({"input_hint_block.16.weight": s["input_hint_block.2.weight"]}), "16"),
        (lambda s: [s.pop(f"controlnet_blocks.1.{p}") for p in ("weight", "bias")], "2 double"),
        (lambda s: s.update({"single_blocks.0.linear1.weight": torch.zeros(1)}), "single"),
    ],
    ids=["hint-missing", "hint-extra", "heads-missing", "single-blocks"],
)
def test_malformed_files_name_what_is_wrong(xlabs, change, words):
    state = dict(xlabs)
    change(state)
    with pytest.raises((KeyError, ValueError)) as err:
        flux_xlabs.check_shapes({k: tuple(v.shape) for k, v in state.items()})
        flux_xlabs.to_diffusers(state)
    assert words in str(err.value)


def test_the_real_widths_convert_and_load_on_the_meta_device():
    # flux-canny-controlnet-v3 at Flux.1 dev's widths, as x-flux's modules shape it
    # (hidden 3072, 24 heads, MLP ratio 4, T5 4096, CLIP pooled 768): no memory is used.
    from diffusers import FluxControlNetModel

    base = tiny_cn.transformer_config("flux-dev")
    with torch.device("meta"):
        cfg = {k: base[k] for k in ("in_channels", "joint_attention_dim", "axes_dims_rope")}
        cfg |= dict(num_layers=DEPTH, num_single_layers=0, patch_size=2)
        cfg |= dict(conditioning_embedding_channels=16, guidance_embeds=True)
        real = flux_xlabs.from_diffusers(dict(FluxControlNetModel(**cfg).state_dict()))
    assert set(real) == xflux_keys(DEPTH)
    shapes = {k: tuple(v.shape) for k, v in real.items()}
    expected = {
        "img_in.weight": (3072, 64),
        "txt_in.weight": (3072, 4096),
        "vector_in.in_layer.weight": (3072, 768),
        "time_in.in_layer.weight": (3072, 256),
        "pos_embed_input.weight": (3072, 64),
        "input_hint_block.0.weight": (16, 3, 3, 3),
        "input_hint_block.14.weight": (16, 16, 3, 3),
        "double_blocks.1.img_attn.qkv.weight": (3 * 3072, 3072),
        "double_blocks.1.img_mod.lin.weight": (6 * 3072, 3072),
        "double_blocks.1.txt_mlp.0.weight": (4 * 3072, 3072),
        "double_blocks.1.txt_attn.norm.key_norm.scale": (128,),
        "controlnet_blocks.1.weight": (3072, 3072),
    }
    assert {k: shapes[k] for k in expected} == expected
    flux_xlabs.check_shapes(shapes)
    with torch.device("meta"):
        model = FluxControlNetModel.from_config(flux_xlabs.config(shapes, base))
    model.load_state_dict(flux_xlabs.to_diffusers(real), strict=True, assign=True)
    assert model.input_hint_block is not None and model.config.num_attention_heads == 24
