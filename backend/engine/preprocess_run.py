"""A preprocess job run: the init image through its one control unit's preprocessor, the
annotator's map back as the result (A1111's "preview annotator result"). No checkpoint
loads; the annotator itself is the conditioning package's, reached through the injected
`ControlImageMaker` (unit_planning.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult

from .progress import Reporter
from .unit_planning import ControlImageMaker


def run(job: Job, library, extensions: Sequence[object], reporter: Reporter) -> JobResult:
    maker = next((e for e in extensions if isinstance(e, ControlImageMaker)), None)
    if maker is None:
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE, "this backend was built without preprocessors"
        )
    t0 = time.perf_counter()
    unit = job.controls[0]
    reporter.total = 1
    reporter.state("generating", f"running preprocessor {unit.preprocessor}")
    reporter.check_cancel()
    image = maker.control_image(job, library)
    reporter.step(1)
    res = f", Processor Res: {unit.processor_res}" if unit.processor_res != -1 else ""
    return JobResult(
        job_id=job.job_id,
        images=[
            GeneratedImage(image=image, seed=0, infotext=f"Preprocessor: {unit.preprocessor}{res}")
        ],
        timings={"preprocess": time.perf_counter() - t0},
        model=unit.preprocessor,
        tag=job.tag,
    )
