"""A1111-style CLIP text encoding on the tiny SD1 and SDXL models, against diffusers."""

from __future__ import annotations

import pytest
import torch

from dreamwire.backend.text_encoding import (
    CHUNK_LENGTH,
    PromptEncoder,
    encode_conditioning,
    tokenize_line,
)
from dreamwire.shared.errors import DreamwireError

PROMPT = "a photo of a cat, masterpiece, (sharp) focus"
PLAIN = "a photo of a cat, masterpiece, sharp focus"
NEG = "blurry, lowres"


def _diffusers_can_clip_skip(pipe) -> None:
    # diffusers 0.42's SD1 encode_prompt reads text_encoder.text_model.final_layer_norm, which
    # transformers 5 flattened away; give it the attribute (not a submodule) so its own code
    # can serve as the reference.
    if not hasattr(pipe.text_encoder, "text_model"):
        object.__setattr__(pipe.text_encoder, "text_model", pipe.text_encoder)


def _words(n: int, start: int = 0) -> list[str]:
    # Distinct single-token words: "cat1" etc. are several tokens, so use letters pairs.
    letters = "bcdfghjklmnpqrstvwz"
    return [
        letters[(i // len(letters)) % len(letters)] + letters[i % len(letters)]
        for i in range(start, start + n)
    ]


def _one_token_words(pipe, n: int) -> list[str]:
    out = []
    for w in _words(400):
        if len(pipe.tokenizer(w, add_special_tokens=False)["input_ids"]) == 1:
            out.append(w)
        if len(out) == n:
            return out
    raise AssertionError("not enough one-token words")


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_sd1_equals_diffusers_encode_prompt(sd1_pipe, clip_skip):
    _diffusers_can_clip_skip(sd1_pipe)
    enc = PromptEncoder.for_pipeline(sd1_pipe, clip_skip=clip_skip)
    with torch.no_grad():
        ours = encode_conditioning(enc, PLAIN, NEG, steps=4).at_step(0)
        ref, pair_neg = sd1_pipe.encode_prompt(
            PLAIN, "cpu", 1, True, NEG, clip_skip=clip_skip - 1 or None
        )
        # A1111 applies clip skip to the negative prompt too; diffusers' encode_prompt only
        # to the positive one, so the negative reference is the negative encoded as a prompt.
        ref_neg = sd1_pipe.encode_prompt(NEG, "cpu", 1, False, clip_skip=clip_skip - 1 or None)[0]
    assert ours.cond.shape == (1, 77, 32)
    assert torch.equal(ours.cond, ref)
    assert torch.equal(ours.uncond, ref_neg)
    if clip_skip == 1:
        assert torch.equal(ours.uncond, pair_neg)


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_sdxl_equals_diffusers_encode_prompt(sdxl_pipe, clip_skip):
    enc = PromptEncoder.for_pipeline(sdxl_pipe, clip_skip=clip_skip)
    with torch.no_grad():
        ours = encode_conditioning(enc, PLAIN, NEG, steps=4).at_step(0)
        ref, pair_neg, pooled, pair_neg_pooled = sdxl_pipe.encode_prompt(
            PLAIN, None, "cpu", 1, True, NEG, clip_skip=clip_skip - 1 or None
        )
        ref_neg, _, neg_pooled, _ = sdxl_pipe.encode_prompt(
            NEG, None, "cpu", 1, False, clip_skip=clip_skip - 1 or None
        )  # as for SD1: diffusers skips no layers for the negative prompt, A1111 does
    # Both encoders' hidden states side by side (real SDXL: 768 + 1280).
    assert ours.cond.shape == (1, 77, 32 + 64)
    assert torch.equal(ours.cond, ref)
    assert torch.equal(ours.uncond, ref_neg)
    assert torch.equal(ours.pooled, pooled)
    assert torch.equal(ours.uncond_pooled, neg_pooled)
    if clip_skip == 1:
        assert torch.equal(ours.uncond, pair_neg)
        assert torch.equal(ours.uncond_pooled, pair_neg_pooled)


def test_clip_skip_changes_the_result_and_is_bounded(sd1_pipe):
    with torch.no_grad():
        a = PromptEncoder.for_pipeline(sd1_pipe, 1).encode([PLAIN])[0].embeds
        b = PromptEncoder.for_pipeline(sd1_pipe, 2).encode([PLAIN])[0].embeds
    assert not torch.allclose(a, b)
    layers = sd1_pipe.text_encoder.config.num_hidden_layers
    with pytest.raises(DreamwireError) as err:
        PromptEncoder.for_pipeline(sd1_pipe, layers + 1)
    assert "clip skip" in err.value.message


def test_sdxl_empty_negative_is_zeros(sdxl_pipe):
    enc = PromptEncoder.for_pipeline(sdxl_pipe)
    with torch.no_grad():
        step = encode_conditioning(enc, PLAIN, "", steps=2).at_step(0)
    assert step.uncond.shape == step.cond.shape and not step.uncond.any()
    assert step.uncond_pooled.shape == step.pooled.shape and not step.uncond_pooled.any()


# -- chunking (A1111's tokenize_line) -------------------------------------------------------


def test_chunks_of_75_wrapped_in_bos_eos(sd1_pipe):
    unit = PromptEncoder.for_pipeline(sd1_pipe).units[0]
    words = _one_token_words(sd1_pipe, 80)
    chunks, count = tokenize_line(unit, " ".join(words))
    assert count == 80 and len(chunks) == 2
    ids = sd1_pipe.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    for c in chunks:
        assert len(c.tokens) == 77 == len(c.multipliers)
        assert c.tokens[0] == unit.id_start and c.tokens[-1] == unit.id_end
    assert chunks[0].tokens[1:76] == ids[:75]
    assert chunks[1].tokens[1:6] == ids[75:] and set(chunks[1].tokens[6:]) == {unit.id_end}


def test_comma_backtrack_moves_the_last_phrase(sd1_pipe):
    unit = PromptEncoder.for_pipeline(sd1_pipe).units[0]
    words = _one_token_words(sd1_pipe, 90)
    # 70 words, a comma (token 71), then 19 more: the chunk fills at 75 tokens with the
    # comma 5 tokens back, so the 4 words after the comma move to the second chunk.
    text = " ".join(words[:70]) + ", " + " ".join(words[70:89])
    chunks, _ = tokenize_line(unit, text)
    assert len(chunks) == 2
    first = chunks[0].tokens
    assert first[71] == unit.comma_token and set(first[72:]) == {unit.id_end}
    second_word = sd1_pipe.tokenizer(words[70], add_special_tokens=False)["input_ids"][0]
    assert chunks[1].tokens[1] == second_word
    # With backtracking off, the chunk is cut at exactly 75 tokens.
    chunks, _ = tokenize_line(unit, text, comma_backtrack=0)
    assert chunks[0].tokens[75] != unit.id_end and chunks[0].tokens[71] == unit.comma_token
    # A comma further back than 20 tokens is not used.
    far = " ".join(words[:50]) + ", " + " ".join(words[50:89])
    chunks, _ = tokenize_line(unit, far)
    assert unit.id_end not in chunks[0].tokens[1:76]


def test_break_starts_a_new_chunk(sd1_pipe):
    unit = PromptEncoder.for_pipeline(sd1_pipe).units[0]
    chunks, count = tokenize_line(unit, "red cat BREAK blue dog")
    assert len(chunks) == 2 and count == 75 + 2
    red_cat = sd1_pipe.tokenizer("red cat", add_special_tokens=False)["input_ids"]
    assert chunks[0].tokens[1:3] == red_cat and set(chunks[0].tokens[3:]) == {unit.id_end}
    # A BREAK inside brackets is weighted, so it is just a word there (as in A1111).
    chunks, _ = tokenize_line(unit, "(red BREAK cat)")
    assert len(chunks) == 1


def test_weights_multiply_then_restore_mean(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    unit = enc.units[0]
    chunks, _ = tokenize_line(unit, "a (cat:1.5) [dog]")
    plain_chunks, _ = tokenize_line(unit, "a cat dog")
    assert chunks[0].tokens == plain_chunks[0].tokens
    mults = chunks[0].multipliers
    assert mults[:2] == [1.0, 1.0] and mults[2] == 1.5 and mults[3] == pytest.approx(1 / 1.1)
    with torch.no_grad():
        weighted = enc.encode(["a (cat:1.5) [dog]"])[0].embeds
        z = enc.encode(["a cat dog"])[0].embeds
    m = torch.tensor(mults)[None, :, None]
    expected = z * m
    expected = expected * (z.mean() / expected.mean())
    torch.testing.assert_close(weighted, expected, rtol=0, atol=1e-6)
    assert weighted.mean().item() == pytest.approx(z.mean().item(), rel=1e-5)


def test_long_prompt_gives_154_positions_first_chunk_matches_short(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    words = _one_token_words(sd1_pipe, 100)
    with torch.no_grad():
        long = enc.encode([" ".join(words)])[0].embeds
        short = enc.encode([" ".join(words[:75])])[0].embeds
    assert long.shape == (1, 154, 32)
    torch.testing.assert_close(long[:, :77], short, rtol=0, atol=1e-6)


def test_negative_padded_to_positive_length(sd1_pipe, sdxl_pipe):
    for pipe in (sd1_pipe, sdxl_pipe):
        enc = PromptEncoder.for_pipeline(pipe)
        long = " ".join(_one_token_words(pipe, 100))
        with torch.no_grad():
            sched = encode_conditioning(enc, long, NEG, steps=3)
            step = sched.at_step(0)
            neg = enc.encode([NEG])[0].embeds
        assert step.cond.shape == step.uncond.shape == (1, 154, step.cond.shape[-1])
        assert torch.equal(step.uncond[:, :77], neg)
        assert torch.equal(step.uncond[:, 77:], enc.empty().embeds)
        # ...and the other way round.
        with torch.no_grad():
            other = encode_conditioning(enc, "cat", long, steps=3).at_step(0)
        assert other.cond.shape == other.uncond.shape == (1, 154, step.cond.shape[-1])


# -- prompt editing ---------------------------------------------------------------------------


def test_prompt_editing_schedule(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    with torch.no_grad():
        sched = encode_conditioning(enc, "a [cat:dog:0.5]", NEG, steps=10)
        cat = enc.encode(["a cat"])[0].embeds
        dog = enc.encode(["a dog"])[0].embeds
    assert sched.changes and [end for end, _ in sched.cond] == [5, 10]
    per_step = sched.per_step(10)
    # A1111 counts sampler steps from 0: "cat" for steps 0..5, "dog" for 6..9.
    for i, s in enumerate(per_step):
        assert torch.equal(s.cond, cat if i <= 5 else dog), i
    assert per_step[0] is per_step[5] and per_step[6] is per_step[9]
    assert not encode_conditioning(enc, "a cat", "", steps=10).changes


def test_alternation_batch_mean_is_shared(sdxl_pipe):
    enc = PromptEncoder.for_pipeline(sdxl_pipe)
    with torch.no_grad():
        sched = encode_conditioning(enc, "[(cat:1.3)|dog]", NEG, steps=4)
    assert [end for end, _ in sched.cond] == [1, 2, 3, 4]
    steps = sched.per_step(4)
    assert torch.equal(steps[0].cond, steps[1].cond)  # 0-based: step 0 and 1 use entry 1
    assert not torch.equal(steps[1].cond, steps[2].cond)
    assert steps[0].pooled.shape == (1, 32)


def test_extra_network_tags_are_not_encoded(sd1_pipe):
    enc = PromptEncoder.for_pipeline(sd1_pipe)
    with torch.no_grad():
        tagged = encode_conditioning(enc, "a cat <lora:detail:0.7>", "", steps=2).at_step(0)
        plain = enc.encode(["a cat "])[0].embeds
    assert torch.equal(tagged.cond, plain)


# -- textual inversion hook -------------------------------------------------------------------


class _Vectors:
    def __init__(self, by_key):
        self.by_key = by_key

    def for_key(self, key, width):
        vec = self.by_key.get(key)
        return vec if vec is not None and vec.shape[-1] == width else None


class _Store:
    """A minimal EmbeddingStore: name -> {encoder key: N x width vectors}."""

    def __init__(self, tokenizer, names):
        self.names = names
        self.ids = {n: tokenizer(n, add_special_tokens=False)["input_ids"] for n in names}

    def find_at(self, tokens, pos, tokenizer):
        for name, ids in sorted(self.ids.items(), key=lambda kv: -len(kv[1])):
            if tokens[pos : pos + len(ids)] == ids:
                return name, len(ids)
        return None

    def get(self, name):
        return _Vectors(self.names[name])


def _token_vectors(pipe, encoder, tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return encoder.get_input_embeddings().weight[ids].detach().clone()


def test_embedding_vectors_replace_their_name(sd1_pipe):
    vec = _token_vectors(sd1_pipe, sd1_pipe.text_encoder, sd1_pipe.tokenizer, "cat dog")
    store = _Store(sd1_pipe.tokenizer, {"zzqxvv": {"clip_l": vec}})
    assert len(store.ids["zzqxvv"]) != 2  # the name is not two tokens: slots differ from it
    enc = PromptEncoder.for_pipeline(sd1_pipe, embeddings=store)
    with torch.no_grad():
        got = enc.encode(["a zzqxvv, (zzqxvv:1.2)"])[0]
        ref = PromptEncoder.for_pipeline(sd1_pipe).encode(["a cat dog, (cat dog:1.2)"])[0]
    assert torch.equal(got.embeds, ref.embeds)
    assert got.embeddings_used == ("zzqxvv",)


def test_embedding_never_straddles_chunks(sd1_pipe):
    vec = _token_vectors(sd1_pipe, sd1_pipe.text_encoder, sd1_pipe.tokenizer, "cat dog")
    store = _Store(sd1_pipe.tokenizer, {"zzqxvv": {"clip_l": vec}})
    unit = PromptEncoder.for_pipeline(sd1_pipe, embeddings=store).units[0]
    words = _one_token_words(sd1_pipe, 74)
    chunks, _ = tokenize_line(unit, " ".join(words) + " zzqxvv", store)
    assert len(chunks) == 2
    assert chunks[0].fixes == [] and chunks[0].tokens[75] == unit.id_end
    assert [f.offset for f in chunks[1].fixes] == [1]
    assert chunks[1].tokens[1:3] == [0, 0]


def test_sdxl_embedding_per_encoder_and_conditioning_store(sdxl_pipe, tmp_path):
    """The conditioning helper's EmbeddingSet plugs in as the store (SDXL clip_l/clip_g)."""
    from safetensors.torch import save_file

    from dreamwire.backend.conditioning.embeddings import EmbeddingSet

    clip_l = _token_vectors(sdxl_pipe, sdxl_pipe.text_encoder, sdxl_pipe.tokenizer, "red fox")
    clip_g = _token_vectors(sdxl_pipe, sdxl_pipe.text_encoder_2, sdxl_pipe.tokenizer_2, "red fox")
    path = tmp_path / "foxemb.safetensors"
    save_file({"clip_l": clip_l.contiguous(), "clip_g": clip_g.contiguous()}, str(path))
    store = EmbeddingSet({"foxemb": path})
    enc = PromptEncoder.for_pipeline(sdxl_pipe, embeddings=store)
    with torch.no_grad():
        got = encode_conditioning(enc, "a foxemb in snow", NEG, steps=2).at_step(0)
        ref = encode_conditioning(
            PromptEncoder.for_pipeline(sdxl_pipe), "a red fox in snow", NEG, 2
        )
    ref = ref.at_step(0)
    assert torch.equal(got.cond, ref.cond)
    assert torch.equal(got.pooled, ref.pooled)


def test_chunk_constant():
    assert CHUNK_LENGTH == 75
