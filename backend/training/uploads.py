"""A train_lora job's own pictures (`train_lora.pictures`) written as a kohya-layout folder
in the backend's data folder, where the run reads them as it reads a training folder:
`<uploads>/<job key>/<repeats>_<name>/0000.png` with `0000.txt` beside each captioned one
(a picture without a caption takes the folder's token, the LoRA's name, as kohya does).

The folder is written whole under a temporary name and renamed, so a backend stopped while
writing leaves none half-made; the same job run again (restored from the queue after a
restart) finds it there and reads it as it was. It is removed once the LoRA is written; a
stopped run keeps it for its restart."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from PIL import Image

from dreamwire.backend.library.library import check_name
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.lora_training import LoraTraining

PARTIAL = ".partial"


def job_folder(uploads: Path, job_id: str) -> Path:
    # A job id is the host's text: a digest of it is always one safe folder name.
    return uploads / hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:24]


def write_pictures(uploads: Path | None, job_id: str, t: LoraTraining) -> Path:
    if uploads is None:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            "this backend has no data folder for a job's own training pictures; "
            "put them in a training folder under a model root and name it in data",
        )
    try:
        token = check_name(t.name).replace("/", "_")
    except DreamwireError as exc:
        raise DreamwireError(ErrorCode.INVALID_JOB, f"LoRA name {t.name!r}: {exc}") from exc
    final = job_folder(uploads, job_id)
    if final.is_dir():
        return final
    tmp = final.with_name(final.name + PARTIAL)
    shutil.rmtree(tmp, ignore_errors=True)
    folder = tmp / f"{t.repeats}_{token}"
    folder.mkdir(parents=True)
    for i, picture in enumerate(t.pictures):
        Image.fromarray(picture.image).save(folder / f"{i:04d}.png")
        if picture.caption.strip():
            (folder / f"{i:04d}.txt").write_text(picture.caption, encoding="utf-8")
    tmp.replace(final)
    return final


def remove(folder: Path, uploads: Path | None) -> None:
    """The job's own folder, once its LoRA is whole (never a model root's folder)."""
    if uploads is not None and folder.parent == uploads:
        shutil.rmtree(folder, ignore_errors=True)
