"""A batch job split into parts (shared/batch_split.py): the parts' seeds are the batch's."""

from __future__ import annotations

import numpy as np

from dreamwire.shared.batch_split import merge, split_batch
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult


def _job(**kw) -> Job:
    return Job(**{"prompt": "a fox", "width": 64, "height": 64, "steps": 2, "seed": 40, **kw})


def test_parts_take_consecutive_seeds_larger_parts_first():
    parts = split_batch(_job(batch=5, subseed=9, subseed_strength=0.5), 2)
    assert [(p.batch, p.seed, p.subseed) for p in parts] == [(3, 40, 9), (2, 43, 12)]
    assert len({p.job_id for p in parts}) == 2
    for p in parts:
        p.validate()
    assert [p.batch for p in split_batch(_job(batch=2), 4)] == [1, 1]  # no empty part
    # The backend's seeds are 32-bit and wrap: the part after the last seed starts at 0.
    assert [p.seed for p in split_batch(_job(batch=2, seed=2**32 - 1), 2)] == [2**32 - 1, 0]
    # Not split: one worker, one image, or seeds the backend would draw per job.
    for job, n in [
        (_job(batch=4), 1),
        (_job(batch=1), 3),
        (_job(batch=4, seed=-1), 2),
        (_job(batch=4, subseed=-1, subseed_strength=0.3), 2),
    ]:
        assert split_batch(job, n) == [job]


def test_merged_results_keep_the_parts_order():
    def result(job_id: str, *seeds: int) -> JobResult:
        pixels = np.zeros((1, 1, 3), np.uint8)
        return JobResult(job_id, [GeneratedImage(pixels, s, "") for s in seeds])

    merged = merge([result("a", 1, 2), result("b", 3)])
    assert [g.seed for g in merged.images] == [1, 2, 3] and merged.job_id == "a"
