"""A batch job of several images as several jobs of fewer (for a backend with several
workers: shared/fanout.py), and their results as the one batch's again.

A1111's seed rule makes the split exact: image i of a batch has seed + i (and subseed + i),
so a part of `size` images starting at image `offset` is a batch of `size` from seed +
offset: the same pictures, in the same order.
"""

from __future__ import annotations

import dataclasses

from .job import Job, new_job_id
from .result import JobResult

SEED_MASK = 2**32 - 1  # the backend's seeds are 32-bit: (seed + i) & SEED_MASK


def split_batch(job: Job, parts: int) -> list[Job]:
    """`job` as up to `parts` jobs of consecutive seeds, larger parts first; `[job]` when
    it cannot be split exactly (one image, one part, or a seed the backend draws)."""
    random_subseed = job.subseed_strength > 0 and job.subseed < 0
    if parts <= 1 or job.batch <= 1 or job.seed < 0 or random_subseed:
        return [job]
    n = min(parts, job.batch)
    out, offset = [], 0
    for i in range(n):
        size = job.batch // n + (i < job.batch % n)
        out.append(
            dataclasses.replace(
                job,
                job_id=new_job_id(),
                batch=size,
                seed=_plus(job.seed, offset),
                subseed=_plus(job.subseed, offset) if job.subseed >= 0 else job.subseed,
            )
        )
        offset += size
    return out


def _plus(seed: int, offset: int) -> int:
    """Image `offset`'s seed as the backend derives it (A1111: 32 bits, wrapping)."""
    return seed if offset == 0 else (seed + offset) & SEED_MASK


def merge(results: list[JobResult]) -> JobResult:
    """The parts' results as one batch's, images in seed order, under the first part's id."""
    first = results[0]
    return dataclasses.replace(first, images=[g for r in results for g in r.images])
