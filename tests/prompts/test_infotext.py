"""A1111 `parameters` text: format, parse, round trip, real A1111 examples."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dreamwire.shared.infotext import (
    Infotext,
    format_infotext,
    parse_hashes,
    parse_infotext,
    quote,
    unquote,
)

# The example in A1111's parse_generation_parameters docstring.
A1111_DOCSTRING = (
    "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, "
    "heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), "
    "detailed, intricate\n"
    "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, "
    "disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), "
    "(poorly drawn hands), messy drawing\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, "
    "Model hash: 45dee52b"
)

# A PNG written by A1111 v1.9.4 (LCM LoRA + textual inversions), as it appears in the wild.
A1111_194 = (
    "1girl,A superstar on stage.,, <lora:LCM_15:1>, <lora:ip-adapter-faceid-plusv2_sd15_lora:1>\n"
    "Negative prompt: MajicNegative_V2,badhandv4,\n"
    "Steps: 6, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 3748719078, "
    "Size: 768x1024, Model hash: 19bbe9faa4, Model: fantasticmix_k2, VAE hash: 07af11b95c, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, "
    'Lora hashes: "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9", '
    'TI hashes: "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d", '
    "Downcast alphas_cumprod: True, Version: v1.9.4"
)

# txt2img with Hires.fix, a multi-line prompt and a LoRA, the v1.6 layout.
A1111_HIRES = (
    "masterpiece, best quality, (castle:1.2) on a hill\n"
    "[sunset:night:0.5], <lora:add_detail:0.6>\n"
    "Negative prompt: (worst quality, low quality:1.4), easynegative\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1234567890, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscale: 2, Hires steps: 15, Hires upscaler: Latent, "
    'Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03", '
    "Version: v1.6.0"
)

# img2img inpaint from v1.10 (variation seed, mask fields).
A1111_INPAINT = (
    "a red fox in the snow\n"
    "Negative prompt: blurry\n"
    "Steps: 25, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, "
    "Size: 512x512, Model hash: cc6cb27103, Model: v1-5-pruned-emaonly, "
    "Variation seed: 7, Variation seed strength: 0.25, Denoising strength: 0.75, "
    "Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32, Version: v1.10.1"
)


def test_a1111_docstring_example():
    p = parse_infotext(A1111_DOCSTRING)
    assert p.prompt.startswith("girl with an artist's beret")
    assert p.prompt.endswith("detailed, intricate")
    assert p.negative_prompt.startswith("ugly, fat")
    assert p.negative_prompt.endswith("messy drawing")
    assert p.steps == 20
    assert p.sampler == "Euler a"
    assert p.cfg_scale == 7.0
    assert p.seed == 965400086
    assert (p.width, p.height) == (512, 512)
    assert p.model_hash == "45dee52b"
    assert p.clip_skip is None and p.effective_clip_skip == 1
    assert p.effective_schedule_type == "Automatic"
    assert format_infotext(p) == A1111_DOCSTRING


def test_a1111_194_example():
    p = parse_infotext(A1111_194)
    assert p.prompt == (
        "1girl,A superstar on stage.,, <lora:LCM_15:1>, <lora:ip-adapter-faceid-plusv2_sd15_lora:1>"
    )
    assert p.negative_prompt == "MajicNegative_V2,badhandv4,"
    assert p.sampler == "LCM" and p.schedule_type == "Automatic"
    assert p.cfg_scale == 1.5
    assert p.seed == 3748719078
    assert (p.width, p.height) == (768, 1024)
    assert p.model == "fantasticmix_k2"
    assert p.vae == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert p.vae_hash == "07af11b95c"
    assert p.clip_skip == 2
    assert p.lora_hashes == {
        "LCM_15": "aaebf6360f7d",
        "ip-adapter-faceid-plusv2_sd15_lora": "a95a0f4bdcb9",
    }
    assert p.ti_hashes == {"MajicNegative_V2": "a53884ef726b", "badhandv4": "5e40d722fc3d"}
    assert p.extras == {"Downcast alphas_cumprod": "True"}
    assert p.version == "v1.9.4"
    assert format_infotext(p) == A1111_194


def test_hires_example():
    p = parse_infotext(A1111_HIRES)
    assert p.prompt == (
        "masterpiece, best quality, (castle:1.2) on a hill\n[sunset:night:0.5], <lora:add_detail:0.6>"
    )
    assert p.negative_prompt == "(worst quality, low quality:1.4), easynegative"
    assert p.sampler == "DPM++ 2M Karras" and p.schedule_type is None
    assert p.cfg_scale == 7.5
    assert p.denoising_strength == 0.45
    assert p.hires_upscale == 2.0 and p.hires_steps == 15 and p.hires_upscaler == "Latent"
    assert p.lora_hashes == {"add_detail": "7c6bad76eb54"}
    assert format_infotext(p) == A1111_HIRES


def test_inpaint_example():
    p = parse_infotext(A1111_INPAINT)
    assert p.variation_seed == 7 and p.variation_seed_strength == 0.25
    assert p.mask_blur == 4
    assert p.extras == {"Inpaint area": "Only masked", "Masked area padding": "32"}
    assert format_infotext(p) == A1111_INPAINT


def test_format_fresh_in_a1111_order():
    info = Infotext(
        prompt="a cat",
        negative_prompt="dog",
        steps=20,
        sampler="DPM++ 2M",
        schedule_type="Karras",
        cfg_scale=7.0,
        seed=1,
        width=512,
        height=512,
        model_hash="abcdef1234",
        model="name",
        denoising_strength=0.5,
        clip_skip=2,
        hires_upscale=2.0,
        hires_steps=10,
        hires_upscaler="Latent",
        lora_hashes={"a": "123", "b": "456"},
        version="dreamwire 0.1.0",
        extras={"Seamless": "x"},
    )
    assert format_infotext(info) == (
        "a cat\nNegative prompt: dog\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Model hash: abcdef1234, Model: name, Denoising strength: 0.5, "
        "Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
        'Lora hashes: "a: 123, b: 456", Seamless: x, Version: dreamwire 0.1.0'
    )
    # Keywords work as well as an Infotext.
    assert format_infotext(prompt="x", steps=1, seed=2, width=8, height=8) == (
        "x\nSteps: 1, Seed: 2, Size: 8x8"
    )


def test_clip_skip_one_and_empty_negative_are_not_written():
    text = format_infotext(Infotext(prompt="p", steps=5, seed=3, cfg_scale=6.5, clip_skip=1))
    assert text == "p\nSteps: 5, CFG scale: 6.5, Seed: 3"
    assert "Negative prompt" not in text


def test_quoting_follows_a1111():
    assert quote("Latent") == "Latent"
    assert quote("a, b") == '"a, b"'
    assert quote("x: y") == '"x: y"'
    assert quote('say "hi", ok') == json.dumps('say "hi", ok')
    assert quote("日本, 語") == '"日本, 語"'  # ensure_ascii=False
    assert unquote('"a, b"') == "a, b"
    assert unquote('"broken') == '"broken'
    info = Infotext(prompt="p", steps=1, sampler="Euler", seed=1, model='my "model", v2: final')
    text = format_infotext(info)
    assert 'Model: "my \\"model\\", v2: final"' in text
    assert parse_infotext(text).model == 'my "model", v2: final'


def test_parameters_line_needs_three_pairs():
    # A prompt whose last line looks like one or two pairs stays a prompt.
    p = parse_infotext("a portrait\nstyle: oil, mood: calm")
    assert p.prompt == "a portrait\nstyle: oil, mood: calm"
    assert p.steps is None and p.order == []
    p = parse_infotext("just a prompt")
    assert p.prompt == "just a prompt" and p.negative_prompt == ""


def test_prompt_only_negative_and_multiline_negative():
    text = format_infotext(
        Infotext(negative_prompt="bad\nworse", steps=2, sampler="DDIM", seed=4, cfg_scale=3)
    )
    assert text.startswith("Negative prompt: bad\nworse\nSteps: 2")
    p = parse_infotext(text)
    assert p.prompt == "" and p.negative_prompt == "bad\nworse"


def test_odd_values_fall_back_to_extras():
    p = parse_infotext("p\nSteps: many, Sampler: Euler, Seed: 1, Size: big")
    assert p.steps is None and p.extras["Steps"] == "many"
    assert p.extras["Size"] == "big" and p.width is None
    assert format_infotext(p) == "p\nSteps: many, Sampler: Euler, Seed: 1, Size: big"


def test_edit_after_parse_keeps_order_and_updates_value():
    p = parse_infotext(A1111_HIRES)
    p.seed = 5
    p.cfg_scale = 8.0
    p.vae = "other.safetensors"  # new key: slots in where A1111 puts VAE
    text = format_infotext(p)
    assert "Seed: 5," in text and "CFG scale: 8," in text
    assert "Model: v1-5-pruned-emaonly, VAE: other.safetensors, Denoising strength" in text


def test_raw_spelling_is_kept_on_round_trip():
    text = "p\nSteps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 1, Size: 64x64"
    assert format_infotext(parse_infotext(text)) == text


def test_hashes_helpers():
    assert parse_hashes("a: 1, b: 2") == {"a": "1", "b": "2"}
    assert parse_hashes("") == {}


_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
).map(lambda s: s.strip())


@settings(max_examples=150, deadline=None)
@given(
    prompt=st.lists(_line, min_size=1, max_size=3).map("\n".join),
    negative=st.lists(_line, max_size=3).map("\n".join),
    steps=st.integers(1, 150),
    cfg=st.floats(0, 30, allow_nan=False).map(lambda x: round(x, 2)),
    seed=st.integers(0, 2**32),
    model=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=20,
    ).map(lambda s: s.strip() or "m"),
    denoise=st.none() | st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 3)),
    clip_skip=st.integers(1, 4),
)
def test_round_trip_property(prompt, negative, steps, cfg, seed, model, denoise, clip_skip):
    if prompt.strip() != prompt or negative.strip() != negative:
        return  # A1111 strips the whole text; inner blank lines survive
    if any(line.startswith("Negative prompt:") for line in prompt.split("\n")):
        return  # a prompt line that reads as the negative marker cannot round-trip in A1111
    info = Infotext(
        prompt=prompt,
        negative_prompt=negative,
        steps=steps,
        sampler="DPM++ 2M",
        schedule_type="Karras",
        cfg_scale=cfg,
        seed=seed,
        width=512,
        height=768,
        model=model,
        denoising_strength=denoise,
        clip_skip=clip_skip,
        lora_hashes={"detail": "0123456789ab"},
    )
    back = parse_infotext(format_infotext(info))
    expected_prompt = prompt
    assert back.prompt == expected_prompt
    assert back.negative_prompt == negative
    assert back.steps == steps and back.seed == seed and back.cfg_scale == cfg
    assert back.model == model
    assert back.denoising_strength == denoise
    assert back.effective_clip_skip == clip_skip
    assert back.lora_hashes == {"detail": "0123456789ab"}
    assert (back.width, back.height) == (512, 768)
