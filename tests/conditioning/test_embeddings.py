"""Textual-inversion embeddings: A1111 file formats, safe loading, and vectors landing in
the prompt embedding exactly where the name stands."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from dreamwire.backend.conditioning import embeddings
from dreamwire.shared.errors import DreamwireError, ErrorCode


@pytest.fixture(scope="module")
def emb_dir(tiny_models):
    return tiny_models / "models" / "embeddings"


@pytest.fixture(scope="module")
def embset(emb_dir):
    return embeddings.EmbeddingSet({p.stem: p for p in emb_dir.iterdir()})


def test_a1111_formats(emb_dir):
    pt = embeddings.load(emb_dir / "bad-hands-5.pt")
    assert pt.count == 2 and pt.vectors[""].shape == (2, 32)
    st = embeddings.load(emb_dir / "EasyNegative.safetensors")
    assert st.count == 3 and st.vectors[""].shape == (3, 32)
    xl = embeddings.load(emb_dir / "negativeXL_D.safetensors")
    assert xl.vectors["clip_l"].shape == (2, 32) and xl.vectors["clip_g"].shape == (2, 64)
    assert torch.equal(xl.for_key("clip_g", 64), xl.vectors["clip_g"])
    assert xl.for_key("clip_l", 64) is None  # no clip_l vectors of that width


def test_diffusers_concept(tmp_path):
    path = tmp_path / "concept.bin"
    torch.save({"<cat-toy>": torch.ones(32)}, path)
    assert embeddings.load(path).vectors[""].shape == (1, 32)


def _capture(text_encoder):
    seen = {}

    def hook(_m, _i, out):
        seen["tokens"] = out.detach().clone()

    return seen, text_encoder.get_input_embeddings().register_forward_hook(hook)


def test_vectors_land_where_the_name_stands(engine, embset):
    comps = engine.load("tiny-sd1").components
    tok, te = comps["tokenizer"], comps["text_encoder"]
    easy = embset.get("EasyNegative")
    seen, handle = _capture(te)  # registered before inject's hook: sees the un-fixed rows
    try:
        hidden, ids, fixes = embeddings.encode_simple("moss, EasyNegative, bricks", tok, te, embset)
    finally:
        handle.remove()
    assert len(fixes) == 1 and fixes[0].vectors.shape == (3, 32)
    offset = fixes[0].offset
    prefix = tok("moss,", add_special_tokens=False)["input_ids"]
    assert offset == 1 + len(prefix)  # right after BOS and "moss,"
    assert ids[offset : offset + 3] == [embeddings.PLACEHOLDER] * 3

    # What the transformer layers receive: the token rows with the vectors written in.
    with embeddings.inject(te, [fixes]):
        after, handle = _capture(te)  # registered after inject's hook: sees its result
        try:
            te(torch.tensor([ids]))
        finally:
            handle.remove()
    rows = after["tokens"][0]
    torch.testing.assert_close(rows[offset : offset + 3], easy.vectors[""], rtol=0, atol=0)
    assert torch.equal(rows[:offset], seen["tokens"][0][:offset])  # the rest is untouched

    plain, *_ = embeddings.encode_simple("moss, bricks", tok, te, embset)
    assert not torch.allclose(hidden, plain)


def test_name_in_a_negative_prompt_and_pt_file(engine, embset):
    comps = engine.load("tiny-sd1").components
    tok = comps["tokenizer"]
    ids = tok("blurry, bad-hands-5", add_special_tokens=False)["input_ids"]
    out, fixes = embset.expand(ids, tok, None, 32)
    assert len(fixes) == 1 and torch.equal(fixes[0].vectors, embset.get("bad-hands-5").vectors[""])
    assert len(out) == len(tok("blurry,", add_special_tokens=False)["input_ids"]) + 2


def test_sdxl_embedding_goes_to_both_encoders(engine, embset):
    comps = engine.load("tiny-sdxl").components
    xl = embset.get("negativeXL_D")
    for tok, key, width in (
        (comps["tokenizer"], "clip_l", 32),
        (comps["tokenizer_2"], "clip_g", 64),
    ):
        ids = tok("negativeXL_D", add_special_tokens=False)["input_ids"]
        _, fixes = embset.expand(ids, tok, key, width)
        assert len(fixes) == 1 and torch.equal(fixes[0].vectors, xl.vectors[key])
    # An SD1 embedding (width 32) has no clip_g-wide vectors: on the second encoder its name
    # stays ordinary text, as in A1111.
    ids = comps["tokenizer_2"]("EasyNegative", add_special_tokens=False)["input_ids"]
    out, fixes = embset.expand(ids, comps["tokenizer_2"], "clip_g", 64)
    assert fixes == [] and out == ids


def test_pickled_and_corrupt_embeddings(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"string_to_param": {"*": Payload()}}, evil)
    with pytest.raises(DreamwireError) as err:
        embeddings.load(evil)
    assert err.value.code == ErrorCode.MODEL_UNSAFE
    assert not marker.exists()

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage")
    with pytest.raises(DreamwireError) as err:
        embeddings.load(broken)
    assert err.value.code == ErrorCode.MODEL_CORRUPT

    odd = tmp_path / "odd.safetensors"
    save_file({"weights": torch.zeros(2, 2), "other": torch.zeros(1)}, str(odd))
    with pytest.raises(DreamwireError) as err:
        embeddings.load(odd)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
