"""The A1111 ControlNet extension's "ControlNet N" entries (shared/infotext_controlnet.py),
read from infotexts the extension wrote and written the way its
ControlNetUnit.serialize() writes them."""

from __future__ import annotations

from dreamwire.shared.infotext import Infotext, format_infotext, parse_infotext
from dreamwire.shared.infotext_controlnet import ControlNetEntry, parse_entry
from dreamwire.shared.job import ControlUnit

# A1111 v1.9.4 with sd-webui-controlnet, quoted verbatim from AIGODLIKE/ComfyUI-BlenderAI-node,
# utils.py (commit b52b0d1a9740), test input `in_t1` (its three lines).
PUBLISHED = (
    "masterpiece,ultra high quality,highest quality,super fine,1girl,solo,(black back"
    "ground:1.3),(silhouette:1.1),sparkle,looking at viewer,upper body,simple backgro"
    "und,glowing,(dim lighting:1.2),crystal clear,colorful clothes,\n"
    "Negative prompt: Easy Negative,bad handv4,ng_deepnegative_v1_75t,(worst quality:"
    "2),(low quality:2),(normal quality:2),lowres,((monochrome)),((grayscale)),bad an"
    "atomy,DeepNegative,skin spots,acnes,skin blemishes,(fat:1.2),facing away,looking"
    " away,tilted head,lowres,bad anatomy,bad hands,missing fingers,extra digit,fewer"
    " digits,bad feet,poorly drawn hands,poorly drawn face,mutation,deformed,extra fi"
    "ngers,extra limbs,extra arms,extra legs,malformed limbs,fused fingers,too many f"
    "ingers,long neck,cross-eyed,mutated hands,polar lowres,bad body,bad proportions,"
    "gross proportions,missing arms,missing legs,extra digit,extra arms,extra leg,ext"
    "ra foot,teethcroppe,signature,watermark,username,blurry,cropped,jpeg artifacts,t"
    "ext,Lower body exposure,\n"
    "Steps: 30, Sampler: UniPC, Schedule type: Karras, CFG scale: 7, Seed: 3620085674"
    ", Size: 1024x1536, Model hash: 3d1b3c42ec, Model: AWPainting_v1.2, ControlNet 0:"
    ' "Module: tile_resample, Model: control_v11f1e_sd15_tile_fp16 [3b860298], Weight'
    ": 0.6, Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 1.0, Thres"
    "hold B: 0.5, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: True, Contro"
    'l Mode: Balanced", TI hashes: "ng_deepnegative_v1_75t: 54e7e4826d53", Pad conds:'
    " True, Version: v1.9.4"
)
# The extension's own parsing test (Mikubill/sd-webui-controlnet, unit_tests/args_test.py,
# test_infotext_parsing, commit 56cec5b2958e): an older build's unit with "Low Vram" and
# whole-number floats.
EXTENSION_TEST = (
    "Module: inpaint_only+lama, Model: control_v11p_sd15_inpaint [ebff9138], Weight: 1, "
    "Resize Mode: Resize and Fill, Low Vram: False, Guidance Start: 0, Guidance End: 1, "
    "Pixel Perfect: True, Control Mode: Balanced"
)
# The 2023 layout, quoted from AIGODLIKE/ComfyUI-BlenderAI-node,
# SDNode/custom_nodes/Cup-ClipBoard/cup_clipboard.js (commit b52b0d1a9740), _control_net().
LEGACY = (
    "preprocessor: depth_leres (LeRes 深度图估算）, model: control_v11f1p_sd15_depth, "
    "weight: 0.7, starting/ending: (0.23, 0.76), resize mode: Crop and Resize, "
    "pixel_perfect: True, control mode: Balanced, preprocessor params: (1024, 0, 0)"
)


def test_published_infotext_parses_into_settings():
    info = parse_infotext(PUBLISHED)
    assert list(info.controlnets) == [0]
    assert info.controlnets[0] == ControlNetEntry(
        module="tile_resample",
        model="control_v11f1e_sd15_tile_fp16 [3b860298]",
        weight=0.6,
        resize_mode="Crop and Resize",
        processor_res=512,
        threshold_a=1.0,
        threshold_b=0.5,
        guidance_start=0.0,
        guidance_end=1.0,
        pixel_perfect=True,
        control_mode="Balanced",
    )
    assert "ControlNet 0" not in info.extras
    assert info.controlnets[0].model_hash == "3b860298"
    assert info.control_units() == [
        ControlUnit(
            type="tile",
            image=None,
            model="control_v11f1e_sd15_tile_fp16",
            weight=0.6,
            preprocessor="tile_resample",
        )
    ]
    assert info.ti_hashes == {"ng_deepnegative_v1_75t": "54e7e4826d53"}


def test_published_infotext_round_trips():
    info = parse_infotext(PUBLISHED)
    assert format_infotext(info) == PUBLISHED
    # Written again from the typed settings alone (no text kept), the entry is the same.
    entry = info.controlnets[0]
    entry.raw = None
    published = parse_infotext(PUBLISHED).raw["ControlNet 0"]
    assert entry.to_text() == published
    fresh = Infotext(steps=30, sampler="UniPC", controlnets={0: entry})
    assert format_infotext(fresh) == f'Steps: 30, Sampler: UniPC, ControlNet 0: "{published}"'


def test_extension_test_entry_keeps_unknown_keys_and_spelling():
    entry = parse_entry(EXTENSION_TEST)
    assert (entry.module, entry.weight, entry.guidance_end) == ("inpaint_only+lama", 1.0, 1.0)
    assert entry.resize_mode == "Resize and Fill" and entry.pixel_perfect is True
    assert entry.extras == {"Low Vram": "False"}
    assert entry.to_text() == EXTENSION_TEST
    unit = entry.control_unit()
    assert (unit.type, unit.model, unit.resize_mode) == (
        "inpaint",
        "control_v11p_sd15_inpaint",
        "resize_and_fill",
    )
    # Changed, the entry is written afresh in the current layout; unknown keys stay last.
    entry.weight = 0.5
    assert entry.to_text() == (
        "Module: inpaint_only+lama, Model: control_v11p_sd15_inpaint [ebff9138], Weight: 0.5, "
        "Resize Mode: Resize and Fill, Processor Res: 512, Threshold A: 0.5, "
        "Threshold B: 0.5, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: True, "
        "Control Mode: Balanced, Low Vram: False"
    )


def test_legacy_layout_is_read():
    text = f'Steps: 20, Sampler: Euler, Seed: 1, Controlnet 1: "{LEGACY}"'
    info = parse_infotext(text)
    entry = info.controlnets[1]
    assert (entry.module, entry.model) == (
        "depth_leres (LeRes 深度图估算）",
        "control_v11f1p_sd15_depth",
    )
    assert (entry.weight, entry.guidance_start, entry.guidance_end) == (0.7, 0.23, 0.76)
    assert (entry.processor_res, entry.threshold_a, entry.threshold_b) == (1024, 0.0, 0.0)
    assert entry.pixel_perfect is True and entry.extras == {}
    assert format_infotext(info) == text
    [unit] = info.control_units()
    assert (unit.type, unit.start, unit.end) == ("depth", 0.23, 0.76)


def test_units_go_where_the_extension_writes_them():
    entry = ControlNetEntry(module="canny", model="control_v11p_sd15_canny [d14c016b]")
    info = Infotext(
        steps=20,
        denoising_strength=0.5,
        mask_blur=4,
        hires_upscale=2.0,
        lora_hashes={"a": "123"},
        controlnets={2: entry, 0: ControlNetEntry()},
        extras={"Inpaint area": "Only masked"},
        version="v1.10.1",
    )
    keys = list(info.params())
    assert keys == [
        "Steps",
        "Denoising strength",
        "Mask blur",
        "ControlNet 0",
        "ControlNet 2",
        "Inpaint area",
        "Hires upscale",
        "Lora hashes",
        "Version",
    ]
    text = format_infotext(info)
    assert 'ControlNet 0: "Module: none, Model: None, Weight: 1.0, ' in text
    assert parse_infotext(text).controlnets == {0: ControlNetEntry(), 2: entry}


def test_a_value_with_a_comma_or_colon_is_written_empty_as_the_extension_does():
    assert ControlNetEntry(model="a, b [12345678]").to_text() == ""
    assert ControlNetEntry(module="c:d").to_text() == ""


def test_odd_values_are_kept_not_raised():
    entry = parse_entry("Module: canny, Weight: heavy, Pixel Perfect: maybe, junk")
    assert entry.module == "canny" and entry.weight == 1.0
    assert entry.extras == {"Weight": "heavy", "Pixel Perfect": "maybe"}


def test_a_mediapipe_face_entry_reads_back_as_a_face_unit():
    """The extension's entry for ControlNetMediaPipeFace (its sliders at their defaults):
    the model's name, or without a model the module's, says the face type; an IP-Adapter
    FaceID model (its name holds "face" too) stays a reference unit."""
    text = (
        "Module: mediapipe_face, Model: control_v2p_sd15_mediapipe_face [9c7ef6e9], "
        "Weight: 1.0, Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 1.0, "
        "Threshold B: 0.5, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, "
        "Control Mode: Balanced"
    )
    unit = parse_entry(text).control_unit()
    assert unit == ControlUnit(
        type="mediapipe_face",
        image=None,
        model="control_v2p_sd15_mediapipe_face",
        preprocessor="mediapipe_face",
    )
    assert parse_entry("Module: mediapipe_face, Model: None").control_type == "mediapipe_face"
    drawn = parse_entry("Module: none, Model: control_v2p_sd21_mediapipe_face [0123abcd]")
    assert drawn.control_type == "mediapipe_face"
    faceid = parse_entry("Module: ip-adapter_face_id, Model: ip-adapter-faceid_sd15 [0a1b2c3d]")
    assert faceid.control_type == "ip-adapter"
