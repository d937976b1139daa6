"""Every result on disk before it goes anywhere else, so a lost client loses nothing.

Layout of the output folder::

    OUT/
      jobs/
        <job_id>/                  one folder per job (job ids are hex, see Job.job_id)
          00-<seed>.png            image 0 of the batch; A1111 `parameters` tEXt chunk
          01-<seed>.png            image 1 ...
          result.json              the record: job id, tag, model, timings, time of
                                   writing, the job's settings (arrays left out) and per
                                   image: file, seed, size, infotext
          failed.json              instead of the above, for a job stored as failed (a
                                   poison job): code, message, time, the job's settings

result.json is written last and atomically: a folder without it is an unfinished write and
`load` does not report it. failed.json is written atomically too; `load` raises the error it
holds, so fetch-result and a repeated submit answer with that error and never run the job. PNGs carry the infotext themselves, so A1111, ComfyUI and image
viewers read the parameters without the JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, HeatMap, JobResult

RECORD = "result.json"
FAILED = "failed.json"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def write_png(path: Path, image: np.ndarray, infotext: str) -> None:
    meta = PngInfo()
    meta.add_text("parameters", infotext)
    tmp = path.with_suffix(".png.tmp")
    img = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(img).save(tmp, format="PNG", pnginfo=meta)
    os.replace(tmp, path)


def heat_map_path(image: Path, word: str) -> Path:
    """Where a DAAM map of `word` is written beside its image: `<image>-daam-<word>.png`."""
    return image.with_name(f"{image.stem}-daam-{word}.png")


def read_png(path: Path) -> tuple[np.ndarray, str]:
    with Image.open(path) as img:
        img.load()
        return np.asarray(img).copy(), img.info.get("parameters", "")


def _job_settings(job: Job | None) -> dict:
    if job is None:
        return {}
    body, _arrays = job.to_wire()
    body.pop("controls", None)  # images live in the job; only their settings matter here
    body["controls"] = [
        {f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.name != "image"}
        for c in job.controls
    ]
    for key in ("init_image", "mask"):
        body[key] = None if getattr(job, key) is None else "array"
    return body


class ResultStore:
    def __init__(self, out_dir: Path | str):
        self.root = Path(out_dir)

    def folder(self, job_id: str) -> Path | None:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            return None  # never let an id become a path outside the store
        return self.root / "jobs" / job_id

    def save(self, job: Job | None, result: JobResult) -> JobResult:
        """Write the images and the record; returns the result with `path` filled in."""
        folder = self.folder(result.job_id)
        if folder is None:
            raise ValueError(f"bad job id {result.job_id!r}")
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for i, gen in enumerate(result.images):
            # A materials job's maps say which is which in their names too.
            suffix = f"-{gen.map}" if gen.map else ""
            path = folder / f"{i:02d}-{gen.seed}{suffix}.png"
            write_png(path, gen.image, gen.infotext)
            for heat in gen.heat_maps:  # DAAM maps beside their image, named by word
                write_png(heat_map_path(path, heat.word), heat.image, gen.infotext)
            images.append(dataclasses.replace(gen, path=str(path.resolve())))
        saved = dataclasses.replace(result, images=images)
        record = {
            "job_id": result.job_id,
            "tag": result.tag,
            "model": result.model,
            "timings": result.timings,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "job": _job_settings(job),
            "images": [
                {
                    "file": Path(g.path).name,
                    "seed": g.seed,
                    "width": int(g.image.shape[1]),
                    "height": int(g.image.shape[0]),
                    "infotext": g.infotext,
                    "map": g.map,
                    "heat_maps": [h.word for h in g.heat_maps],
                }
                for g in images
            ],
        }
        tmp = folder / (RECORD + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, folder / RECORD)
        return saved

    def save_failure(self, job: Job, err: DreamwireError) -> None:
        """Keep `err` as the final end of `job` (it will never run)."""
        folder = self.folder(job.job_id)
        if folder is None:
            raise ValueError(f"bad job id {job.job_id!r}")
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            **err.to_dict(),
            "job_id": job.job_id,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "job": _job_settings(job),
        }
        tmp = folder / (FAILED + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, folder / FAILED)

    def load(self, job_id: str) -> JobResult | None:
        """The saved result; None if there is none; raises the error of a failed job."""
        folder = self.folder(job_id)
        if folder is None:
            return None
        if not (folder / RECORD).is_file():
            if (folder / FAILED).is_file():
                raise DreamwireError.from_dict(
                    {**json.loads((folder / FAILED).read_text(encoding="utf-8")), "job_id": job_id}
                )
            return None
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        images = []
        for item in record["images"]:
            path = folder / item["file"]
            pixels, infotext = read_png(path)
            images.append(
                GeneratedImage(
                    image=pixels,
                    seed=int(item["seed"]),
                    infotext=infotext or item.get("infotext", ""),
                    path=str(path.resolve()),
                    map=str(item.get("map", "")),
                    heat_maps=[
                        HeatMap(word, read_png(heat_map_path(path, word))[0])
                        for word in item.get("heat_maps", [])
                    ],
                )
            )
        return JobResult(
            job_id=record["job_id"],
            images=images,
            timings=dict(record.get("timings", {})),
            model=record.get("model", ""),
            tag=record.get("tag", ""),
        )

    def record(self, job_id: str) -> dict | None:
        folder = self.folder(job_id)
        if folder is None or not (folder / RECORD).is_file():
            return None
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
