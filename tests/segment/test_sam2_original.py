"""SAM 2's original checkpoints (Meta's sam2.1_hiera_*.pt, a pickled {"model": state dict})
load weights-only into transformers' Sam2Model and segment as the same model saved as a
transformers folder. The tiny file is written in the sam2 repository's key layout (checked
once against Meta's own modules: they load it with no key missing or left over, and give
the same mask logits as the conversion)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from dreamwire.backend.segmentation import sam2_masks, sam2_original
from dreamwire.backend.tiny import sam2 as tiny
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.segment import Click, Segment

IMG = np.random.default_rng(6).integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny model as Meta ships it in ComfyUI's models/sam2, and as a transformers
    folder elsewhere (the reference)."""
    base = tmp_path_factory.mktemp("sam2_original")
    model = tiny.original_model()
    path = tiny.save_original(base / "comfy" / sam2_masks.COMFY_SAM2, model)
    model.save_pretrained(str(base / "reference"))
    return base / "comfy", path, base / "reference"


@pytest.mark.parametrize(
    "original, converted",
    [
        (
            "image_encoder.trunk.blocks.3.mlp.layers.1.weight",
            "vision_encoder.backbone.blocks.3.mlp.proj_out.weight",
        ),
        (
            "image_encoder.trunk.blocks.0.norm1.bias",
            "vision_encoder.backbone.blocks.0.layer_norm1.bias",
        ),
        (
            "image_encoder.trunk.patch_embed.proj.weight",
            "vision_encoder.backbone.patch_embed.projection.weight",
        ),
        ("image_encoder.neck.convs.2.conv.bias", "vision_encoder.neck.convs.2.bias"),
        (
            "sam_mask_decoder.iou_prediction_head.layers.1.weight",
            "mask_decoder.iou_prediction_head.layers.0.weight",
        ),
        (
            "sam_mask_decoder.pred_obj_score_head.layers.2.bias",
            "mask_decoder.pred_obj_score_head.proj_out.bias",
        ),
        (
            "sam_mask_decoder.output_hypernetworks_mlps.3.layers.0.weight",
            "mask_decoder.output_hypernetworks_mlps.3.proj_in.weight",
        ),
        ("sam_mask_decoder.output_upscaling.1.weight", "mask_decoder.upscale_layer_norm.weight"),
        (
            "sam_mask_decoder.transformer.layers.1.mlp.layers.0.bias",
            "mask_decoder.transformer.layers.1.mlp.proj_in.bias",
        ),
        (
            "sam_mask_decoder.transformer.layers.0.cross_attn_token_to_image.out_proj.bias",
            "mask_decoder.transformer.layers.0.cross_attn_token_to_image.o_proj.bias",
        ),
        (
            "sam_mask_decoder.transformer.norm_final_attn.weight",
            "mask_decoder.transformer.layer_norm_final_attn.weight",
        ),
        (
            "sam_prompt_encoder.mask_downscaling.4.bias",
            "prompt_encoder.mask_embed.layer_norm2.bias",
        ),
        (
            "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
            "prompt_encoder.shared_embedding.positional_embedding",
        ),
        ("no_mem_embed", "no_memory_embedding"),
    ],
)
def test_keys_are_renamed_as_transformers_converter_does(original, converted):
    assert sam2_original.rename(original) == converted


def test_variant_from_meta_file_names(tmp_path):
    assert sam2_original.variant(tmp_path / "sam2.1_hiera_base_plus.pt") == "base_plus"
    assert sam2_original.variant(tmp_path / "sam2_hiera_large.pt") == "large"
    assert sam2_original.variant(tmp_path / "sam2.1_hiera_small-fp16.safetensors") == "small"
    with pytest.raises(DreamwireError) as err:
        sam2_original.variant(tmp_path / "sam2_hiera_huge.pt")
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and "sam2_hiera_huge.pt" in str(err.value)


def test_original_checkpoint_segments_as_the_converted_model(files):
    from transformers import Sam2Model

    _, path, reference = files
    ours = sam2_original.load(path, image_size=tiny.SIDE).eval()
    theirs = Sam2Model.from_pretrained(str(reference)).eval()
    want = theirs.state_dict()
    got = ours.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    for seg in (Segment([Click(20.5, 30.0)]), Segment([Click(20, 30)], box=[4, 2, 60, 44])):
        mask = sam2_masks.predict(ours, IMG, seg)
        np.testing.assert_array_equal(mask, sam2_masks.predict(theirs, IMG, seg))
        assert 0 < mask.sum() < mask.size


def test_found_in_comfyui_and_loaded_at_the_released_size(files, tmp_path, monkeypatch):
    root, path, _ = files
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path))
    assert sam2_masks.find([root]) == path
    assert sam2_masks.find([root], name="sam2.1-hiera-tiny") == path
    assert sam2_masks.find([root], name="sam2.1_hiera_tiny.pt") == path
    model = sam2_masks.load_model(path)
    assert sam2_masks.input_side(model) == sam2_original.IMAGE_SIZE
    backbone = model.config.vision_config.backbone_config
    assert backbone.num_attention_heads_per_stage == [1, 2, 4, 8]
    assert backbone.global_attention_blocks == [5, 7, 9]
    assert backbone.embed_dim_per_stage == [8, 16, 32, 64]  # read from the tensors
    assert backbone.blocks_per_stage == [1, 2, 7, 2]


def test_pickled_code_is_refused_and_missing_tensors_are_corrupt(files, tmp_path):
    _, path, _ = files
    state = torch.load(path, weights_only=True)["model"]
    evil = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state, "args": argparse.Namespace(x=1)}, evil)
    with pytest.raises(DreamwireError) as err:
        sam2_original.load(evil)
    assert err.value.code is ErrorCode.MODEL_UNSAFE
    del state["sam_mask_decoder.iou_token.weight"]
    broken = tmp_path / "broken" / "sam2_hiera_tiny.pt"
    broken.parent.mkdir()
    torch.save({"model": state}, broken)
    with pytest.raises(DreamwireError) as err:
        sam2_original.load(broken)
    assert err.value.code is ErrorCode.MODEL_CORRUPT and "iou_token" in str(err.value)
