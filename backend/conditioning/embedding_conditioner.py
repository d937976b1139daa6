"""Textual-inversion embeddings as a conditioner: the library's embeddings offered to the
text encoder for the job (backend/text_encoding.py looks names up through
JobContext.embeddings; only those a prompt names are read)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from dreamwire.backend.engine.hooks import Conditioner, JobContext

from .embeddings import EmbeddingSet
from .files import library_entries


class EmbeddingConditioner(Conditioner):
    name = "conditioning.embeddings"

    def resolve(self, ctx: JobContext) -> EmbeddingSet:
        # Every job gets the set: a prompt may name an embedding anywhere, and nothing is
        # read until it does.
        return EmbeddingSet(library_entries(ctx.library, "embedding"))

    @contextmanager
    def attach_job(self, ctx: JobContext, resolved: EmbeddingSet) -> Iterator[None]:
        before = ctx.embeddings
        ctx.embeddings = resolved
        try:
            yield
        finally:
            ctx.embeddings = before

    def attach(self, ctx: JobContext, resolved: EmbeddingSet, mode: str):
        return nullcontext()
