"""The TOML config file and the offline CLIP tokenizer."""

from __future__ import annotations

import pytest

from dreamwire.backend import config
from dreamwire.backend.library.tokenizer import VOCAB_SIZE, write_clip_tokenizer
from dreamwire.shared.errors import DreamwireError


def test_config_file_roots_and_output(tmp_path, monkeypatch):
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    path.write_text(
        'model_roots = ["~/webui", "relative/comfy", "/abs/models"]\noutput_dir = "out"\n'
    )
    monkeypatch.setenv("DREAMWIRE_CONFIG", str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = config.load_config()
    assert cfg.source == path
    assert cfg.model_roots == [
        tmp_path / "home" / "webui",
        path.parent / "relative" / "comfy",  # relative to the file, not the working dir
        config.Path("/abs/models"),
    ]
    assert cfg.output_dir == path.parent / "out"
    # Command-line roots come first and are not repeated.
    merged = config.model_roots(["/abs/models", tmp_path / "cli"], cfg)
    assert merged[:2] == [config.Path("/abs/models"), tmp_path / "cli"]
    assert len(merged) == 4
    assert config.output_dir(None, cfg) == path.parent / "out"
    assert config.output_dir(tmp_path / "x", cfg) == tmp_path / "x"


def test_default_config_location_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DREAMWIRE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "dreamwire" / "config.toml"
    assert config.load_config() == config.Config()
    assert config.model_roots(["a"]) == [config.Path("a")]


@pytest.mark.parametrize("text", ["model_roots = [", "model_roots = 3", "output_dir = 1"])
def test_bad_config_is_a_clear_error(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(DreamwireError) as err:
        config.load_config(path)
    assert str(path) in err.value.message


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import CLIPTokenizer

    root = tmp_path_factory.mktemp("tok")
    one = CLIPTokenizer.from_pretrained(str(write_clip_tokenizer(root / "one")))
    two = CLIPTokenizer.from_pretrained(str(write_clip_tokenizer(root / "two", pad_token="!")))
    return one, two


def test_tokenizer_matches_clip_ids(tokenizers):
    tok, tok2 = tokenizers
    assert len(tok) == VOCAB_SIZE
    assert tok.bos_token_id == 49406 and tok.eos_token_id == 49407
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    # Case and spacing are normalised as in CLIP.
    assert tok("A  Photo of a CAT").input_ids == tok("a photo of a cat").input_ids
    assert tok2("a photo of a cat").input_ids == tok("a photo of a cat").input_ids


def test_padding_tokens(tokenizers):
    tok, tok2 = tokenizers
    padded = tok("a cat", padding="max_length", max_length=77).input_ids
    padded2 = tok2("a cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == len(padded2) == 77
    assert padded[4:] == [49407] * 73  # SD1.x pads with the end token
    assert padded2[3] == 49407 and padded2[4:] == [0] * 73  # OpenCLIP pads with "!" (id 0)


def test_long_prompts_tokenize_past_77(tokenizers):
    tok, _ = tokenizers
    ids = tok(" ".join(["cat"] * 100), truncation=False).input_ids
    assert len(ids) == 102 and set(ids[1:-1]) == {2368}
