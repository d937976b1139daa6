"""`dreamwire models merge`: A1111's Checkpoint Merger rules, on real single files (the tiny
SD1 checkpoint and variants of it), checked against hand-computed tensors."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dreamwire.backend.cli import main
from dreamwire.backend.library import hashing
from dreamwire.backend.library.merge import (
    Checkpoint,
    MergeMethod,
    MergeRequest,
    merge,
    result_name,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
PROBE = "model.diffusion_model.out.2.bias"  # a merged key set to constants below
VAE_KEY = "first_stage_model.decoder.conv_out.bias"


@pytest.fixture(scope="module")
def root(tiny_models, tmp_path_factory) -> Path:
    """A, B, C: the tiny SD1 checkpoint with B and C's weights shifted, a few keys set to
    constants, plus keys only one of them has; an inpainting A; a VAE; the tiny SDXL."""
    root = tmp_path_factory.mktemp("merge-models")
    ckpt = root / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    src = tiny_models / "models" / "Stable-diffusion"
    base = load_file(src / "tiny-sd1.safetensors")

    def variant(name, shift, probe, extra=None, meta=None, drop=()):
        sd = {k: v + shift for k, v in base.items() if k not in drop}
        sd[PROBE] = torch.full_like(base[PROBE], probe)
        sd.update(extra or {})
        save_file(sd, str(ckpt / f"{name}.safetensors"), metadata=meta)

    ids = torch.arange(4, dtype=torch.int64)[None]
    variant(
        "a",
        0.0,
        1.0,
        {
            "alphas_cumprod": torch.linspace(0.9, 0.1, 8),  # no "model": copied from A
            "cond_stage_model.transformer.text_model.embeddings.position_ids": ids,
        },
        meta={"modelspec.title": "Model A"},
    )
    variant(
        "b",
        0.5,
        3.0,
        {
            "model.only_in_b": torch.ones(3),  # dropped: A lacks it
            "cond_stage_model.transformer.text_model.embeddings.position_ids": ids + 7,
        },
    )
    variant("c", 0.25, 2.0, drop=(VAE_KEY,))
    # An inpainting A: 9 input channels, the first 4 those of A.
    inp = {k: v.clone() for k, v in base.items()}
    w = base[CONV_IN]
    inp[CONV_IN] = torch.cat([w, torch.full((w.shape[0], 5) + w.shape[2:], 7.0)], dim=1)
    inp[PROBE] = torch.full_like(base[PROBE], 1.0)
    save_file(inp, str(ckpt / "inp.safetensors"))
    shutil.copy(src / "tiny-sdxl.safetensors", ckpt / "xl.safetensors")
    vae_dir = root / "models" / "VAE"
    vae_dir.mkdir(parents=True)
    vae = {
        k.removeprefix("first_stage_model."): torch.full_like(v, 0.125)
        for k, v in base.items()
        if k.startswith("first_stage_model.")
    }
    vae["loss.logvar"] = torch.zeros(1)  # a training leftover: never baked
    save_file(vae, str(vae_dir / "baked.safetensors"))
    return root


def ck(root: Path, name: str) -> Checkpoint:
    return Checkpoint(name, root / "models" / "Stable-diffusion" / f"{name}.safetensors")


def run(root, *args) -> Path:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["models", "merge", "--models", str(root), *args, "--json"])
    assert rc == 0
    out = json.loads(buf.getvalue().strip().splitlines()[-1])
    return Path(out["path"])


def test_weighted_sum_follows_a1111(root, tmp_path):
    path = run(root, "--primary", "a", "--secondary", "b", "--multiplier", "0.25")
    assert path.parent == root / "models" / "Stable-diffusion"
    assert path.name == "0.75(a) + 0.25(b).safetensors"  # A1111's name for it
    a = load_file(ck(root, "a").path)
    b = load_file(ck(root, "b").path)
    got = load_file(path)
    # (1 - M) * A + M * B on the constants: 0.75 * 1 + 0.25 * 3 = 1.5.
    assert torch.equal(got[PROBE], torch.full_like(a[PROBE], 1.5))
    assert torch.equal(got[CONV_IN], (0.75 * a[CONV_IN]) + (0.25 * b[CONV_IN]))
    # Not merged: keys without "model", the CLIP position ids; keys only B has are dropped.
    assert torch.equal(got["alphas_cumprod"], a["alphas_cumprod"])
    pid = "cond_stage_model.transformer.text_model.embeddings.position_ids"
    assert torch.equal(got[pid], a[pid]) and got[pid].dtype == torch.int64
    assert "model.only_in_b" not in got
    assert set(got) == set(a)
    path.unlink()


def test_add_difference_treats_keys_c_lacks_as_no_difference(root):
    path = run(
        root, "--primary", "a", "--secondary", "b", "--tertiary", "c",
        "--method", "Add difference", "--multiplier", "0.5",
    )  # fmt: skip
    assert path.name == "a + 0.5(b - c).safetensors"
    a, b, c = (load_file(ck(root, n).path) for n in "abc")
    got = load_file(path)
    assert torch.equal(got[PROBE], torch.full_like(a[PROBE], 1.0 + 0.5 * (3.0 - 2.0)))
    assert torch.equal(got[CONV_IN], a[CONV_IN] + (0.5 * (b[CONV_IN] - c[CONV_IN])))
    assert torch.equal(got[VAE_KEY], a[VAE_KEY])  # C lacks it: B - C counts as zero
    path.unlink()


def test_inpainting_a_merges_its_first_four_channels_and_says_so(root):
    path = run(root, "--primary", "inp", "--secondary", "b", "--multiplier", "0.5")
    assert path.name == "0.5(inp) + 0.5(b).inpainting.safetensors"
    inp, b = load_file(ck(root, "inp").path), load_file(ck(root, "b").path)
    got = load_file(path)[CONV_IN]
    assert got.shape == inp[CONV_IN].shape
    assert torch.equal(got[:, :4], (0.5 * inp[CONV_IN][:, :4]) + (0.5 * b[CONV_IN]))
    assert torch.equal(got[:, 4:], inp[CONV_IN][:, 4:])  # the mask/masked-image channels
    path.unlink()
    with pytest.raises(DreamwireError) as err:
        merge(MergeRequest(ck(root, "b"), ck(root, "inp"), None, MergeMethod.WEIGHTED_SUM, 0.5))
    assert err.value.code == ErrorCode.MODEL_MISMATCH
    assert "A must be the inpainting model" in err.value.message


def test_fp16_halves_merged_tensors_only_and_bakes_a_vae(root):
    path = run(
        root, "--primary", "a", "--secondary", "b", "--multiplier", "0.3", "--fp16",
        "--bake-vae", "baked", "--discard", r"^alphas_", "--name", "mine",
    )  # fmt: skip
    assert path.name == "mine.safetensors"
    got = load_file(path)
    assert got[PROBE].dtype == torch.float16
    assert torch.equal(
        got[PROBE], ((0.7 * torch.ones(1)) + (0.3 * 3 * torch.ones(1))).half().expand_as(got[PROBE])
    )
    # The VAE's tensors replace A's first_stage_model.* (halved); its loss.* is not baked.
    assert (
        torch.equal(got[VAE_KEY], torch.full_like(got[VAE_KEY], 0.125))
        and got[VAE_KEY].dtype == torch.float16
    )
    assert "first_stage_model.loss.logvar" not in got
    assert "alphas_cumprod" not in got  # discarded by the regex
    path.unlink()


def test_no_interpolation_with_fp16_halves_every_float_tensor(root):
    path = run(root, "--primary", "a", "--method", "No interpolation", "--fp16", "--name", "a16")
    a = load_file(ck(root, "a").path)
    got = load_file(path)
    pid = "cond_stage_model.transformer.text_model.embeddings.position_ids"
    assert got[pid].dtype == torch.int64
    assert all(t.dtype == torch.float16 for k, t in got.items() if k != pid)
    assert torch.equal(got[CONV_IN], a[CONV_IN].half())
    path.unlink()


def test_metadata_carries_the_recipe_and_the_inputs(root):
    path = run(root, "--primary", "a", "--secondary", "b", "--multiplier", "0.4", "--name", "meta")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["modelspec.title"] == "Model A"  # A's copied
    recipe = json.loads(meta["sd_merge_recipe"])
    sha_a, sha_b = hashing.sha256(ck(root, "a").path), hashing.sha256(ck(root, "b").path)
    assert recipe["type"] == "webui" and recipe["interp_method"] == "Weighted sum"
    assert recipe["primary_model_hash"] == sha_a and recipe["secondary_model_hash"] == sha_b
    assert recipe["tertiary_model_hash"] is None and recipe["multiplier"] == 0.4
    models = json.loads(meta["sd_merge_models"])
    assert models[sha_a]["name"] == "a.safetensors"
    assert models[sha_a]["legacy_hash"] == hashing.legacy_hash(ck(root, "a").path)
    # Merging the merge nests its recipe under the new one, as A1111 does.
    again = run(
        root, "--primary", "meta", "--secondary", "b", "--multiplier", "0.5", "--name", "meta2"
    )
    with safe_open(str(again), "pt") as f:
        nested = json.loads(f.metadata()["sd_merge_models"])
    assert nested[hashing.sha256(path)]["sd_merge_recipe"]["multiplier"] == 0.4
    assert sha_a in nested  # the inner merge's models carried up
    path.unlink()
    again.unlink()


def test_refusals_are_clear_and_write_nothing(root, capsys):
    before = sorted(p.name for p in (root / "models" / "Stable-diffusion").iterdir())
    cases = [
        (["--primary", "a", "--secondary", "xl"], ErrorCode.MODEL_MISMATCH, "one family"),
        (
            ["--primary", "a", "--method", "Add difference", "--secondary", "b"],
            ErrorCode.INVALID_JOB,
            "tertiary",
        ),
        (["--primary", "a", "--secondary", "nope"], ErrorCode.MODEL_NOT_FOUND, "nope"),
        (["--primary", "a", "--secondary", "b", "--discard", "("], ErrorCode.INVALID_JOB, "regex"),
        (
            ["--primary", "a", "--secondary", "b", "--name", "../x"],
            ErrorCode.INVALID_JOB,
            "plain file name",
        ),
    ]
    for args, code, words in cases:
        capsys.readouterr()
        assert main(["models", "merge", "--models", str(root), *args]) != 0
        err = capsys.readouterr().err
        assert f"[{code.value}]" in err and words in err, err
    assert sorted(p.name for p in (root / "models" / "Stable-diffusion").iterdir()) == before


def test_flux_is_refused_by_name():
    from dreamwire.backend.library.entries import Format, Kind, ModelEntry
    from dreamwire.backend.library.merge_families import check_families

    flux = ModelEntry(
        Kind.CHECKPOINT, "flux1-dev", Path("x.safetensors"), Format.SAFETENSORS, "flux-dev"
    )
    with pytest.raises(DreamwireError) as err:
        check_families([flux])
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED and "Flux" in err.value.message


def test_names_round_multipliers_as_a1111():
    a, b = Checkpoint("sub/x", Path("sub/x.safetensors")), Checkpoint("y", Path("y.ckpt"))
    req = MergeRequest(a, b, None, MergeMethod.WEIGHTED_SUM, 1 / 3)
    assert result_name(req, False, False) == "0.67(sub_x) + 0.33(y).safetensors"
    assert result_name(req, False, True) == "0.67(sub_x) + 0.33(y).instruct-pix2pix.safetensors"
