"""The durable queue: every accepted job on disk until its end is final.

Layout (PROTOCOL.md, "Durability")::

    OUT/queue/<job_id>/job.json     {"format": 1, "seq": N, "owner": "...",
                                     "job": Job.to_wire() body}
    OUT/queue/<job_id>/arrays.npz   the job's arrays, arr_0 .. arr_K (numpy, no pickle)
    OUT/queue/<job_id>/started.json {"starts": N}: how often the worker took the job
    OUT/queue-rejected/<job_id>-<stamp>/   entries that failed to load, set aside

An entry is written to a hidden temp folder and renamed into place, so a crash leaves either
a whole entry or none (temp folders left over are swept on the next start). `seq` is the
submission order; it survives restarts so a restored queue keeps its order. `owner` is who
may cancel the job (owners.py). `started.json` is replaced atomically each time the worker
takes the job, so a job that keeps killing the backend is recognised (a poison job) instead
of being started on every restart. Removal renames the entry to a temp name first: a crash
halfway through deleting it can never leave something that loads as a job again.

The server thread saves and removes entries, the worker thread counts starts: every change
holds one lock, so a start is never counted into an entry that a cancel is removing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import PRIORITIES, Job

log = logging.getLogger("dreamwire.server")

FORMAT = 1
_JOB = "job.json"
_ARRAYS = "arrays.npz"
_STARTED = "started.json"
_TMP = ".tmp-"


@dataclass
class Stored:
    job: Job
    seq: int
    owner: str = ""  # who may cancel it ("" for entries written before owners were kept)
    starts: int = 0  # how often a worker took it; a crash left it unfinished each time


class DurableQueue:
    def __init__(self, root: Path, rejected: Path):
        self.root = root
        self.rejected = rejected
        self.next_seq = 0
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def save(self, job: Job, owner: str = "") -> None:
        """Write `job` atomically; raises OSError if the disk refuses."""
        with self._lock:
            self._save(job, owner)

    def _save(self, job: Job, owner: str) -> None:
        body, arrays = job.to_wire()
        final = self.root / job.job_id
        tmp = self._tmp_name(job.job_id)
        tmp.mkdir()
        try:
            meta = {"format": FORMAT, "seq": self.next_seq, "owner": owner, "job": body}
            _write(tmp / _JOB, json.dumps(meta, allow_nan=False).encode())
            with open(tmp / _ARRAYS, "wb") as f:
                np.savez(f, *arrays)
                f.flush()
                os.fsync(f.fileno())
            if final.exists():  # a leftover of an earlier run with this id: the new one wins
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.next_seq += 1

    def remove(self, job_id: str) -> None:
        """Forget `job_id`; once this returns, no restart can bring the job back."""
        with self._lock:
            entry = self.root / job_id
            doomed = self._tmp_name(job_id)
            try:
                os.rename(entry, doomed)  # atomic: the entry is gone as a whole
            except FileNotFoundError:
                return
            except OSError as exc:
                log.error("could not move queue entry %s aside (%s); deleting it", job_id, exc)
                doomed = entry
            _fsync_dir(self.root)
            shutil.rmtree(doomed, ignore_errors=True)

    def record_start(self, job_id: str) -> int:
        """Count one more start of `job_id` (durably, before it runs); the count, or 0 when
        the job has no entry (a live job, or one cancelled meanwhile)."""
        with self._lock:
            entry = self.root / job_id
            if not entry.is_dir():
                return 0
            starts = _read_starts(entry) + 1
            _write_starts(entry, starts)
            return starts

    def undo_start(self, job_id: str) -> None:
        """The backend stopped the job itself (a clean shutdown): that start does not count
        towards a poison job."""
        with self._lock:
            entry = self.root / job_id
            if entry.is_dir() and (starts := _read_starts(entry)) > 0:
                _write_starts(entry, starts - 1)

    def load_all(self) -> list[Job]:
        """Every stored job, validated, in queue order (priority, then submission)."""
        return [s.job for s in self.load_entries()]

    def load_entries(self) -> list[Stored]:
        """Every stored entry, validated, in queue order (priority, then submission).

        A corrupt entry is moved to the rejected folder and logged; it never raises."""
        found: list[Stored] = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(_TMP):  # a write cut short by a crash: never accepted
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                stored = self._load(path)
            except Exception as exc:
                self._reject(path, exc)
                continue
            if stored.job.priority == "live":
                # The server never stores live jobs (a stale live frame is worthless); one
                # found here (a hand copy, an older backend) is dropped, not run.
                log.info("queue entry %s is a live job; dropped", path.name)
                shutil.rmtree(path, ignore_errors=True)
                continue
            found.append(stored)
        found.sort(key=lambda s: (PRIORITIES[s.job.priority], s.seq))
        self.next_seq = max((s.seq for s in found), default=-1) + 1
        return found

    def _load(self, path: Path) -> Stored:
        if not path.is_dir():
            raise ValueError("not a folder")
        meta = json.loads((path / _JOB).read_bytes(), parse_constant=_no_constant)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(
                f"unknown entry format {meta.get('format') if isinstance(meta, dict) else meta!r}"
            )
        seq = meta.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(f"bad seq {seq!r}")
        with np.load(path / _ARRAYS, allow_pickle=False) as npz:
            arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        job = Job.from_wire(meta["job"], arrays).validate()
        if job.job_id != path.name:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"entry holds job {job.job_id!r}", path.name
            )
        owner = meta.get("owner", "")
        if not isinstance(owner, str):
            raise ValueError(f"bad owner {owner!r}")
        return Stored(job, seq, owner, _read_starts(path))

    def _tmp_name(self, job_id: str) -> Path:
        return self.root / f"{_TMP}{job_id}-{uuid.uuid4().hex[:8]}"

    def _reject(self, path: Path, exc: Exception) -> None:
        self.rejected.mkdir(parents=True, exist_ok=True)
        dest = (
            self.rejected / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        )
        log.error(
            "queue entry %s is unreadable (%s: %s); moved to %s",
            path.name,
            type(exc).__name__,
            exc,
            dest,
        )
        try:
            shutil.move(str(path), dest)
        except OSError:
            log.exception("could not move %s aside; removing it", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _read_starts(entry: Path) -> int:
    """Starts recorded in `entry` (0 if never started); ValueError if the file is damaged."""
    try:
        data = json.loads((entry / _STARTED).read_bytes())
    except FileNotFoundError:
        return 0
    starts = data.get("starts") if isinstance(data, dict) else None
    if not isinstance(starts, int) or isinstance(starts, bool) or starts < 0:
        raise ValueError(f"bad {_STARTED}: {data!r}")
    return starts


def _write_starts(entry: Path, starts: int) -> None:
    tmp = entry / f"{_STARTED}.tmp"
    _write(tmp, json.dumps({"starts": starts}).encode())
    os.replace(tmp, entry / _STARTED)
    _fsync_dir(entry)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} in job.json")
