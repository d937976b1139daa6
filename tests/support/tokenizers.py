"""Tests that look for Qwen's tokenizer see only their own tree's copy."""

from __future__ import annotations

from pathlib import Path


def only_tree_tokenizers(monkeypatch, base: Path) -> None:
    """No tokenizer from the environment or this machine's Hugging Face hub cache."""
    monkeypatch.delenv("DREAMWIRE_QWEN_TOKENIZER", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(base / "no-hub"))
    monkeypatch.setenv("HF_HOME", str(base / "no-hf"))
