"""Notices when the files under the model roots change, and has the library read them again.

A thread stats the roots' files (path, size, modification time) every `interval` seconds;
once a difference has held still for one more interval (a checkpoint still being written
by a `dreamwire models merge` into a root, a copy or a download is reported once, when it
is whole) it calls `rescan` (the library reads its folders again: header reads, here and
not on the server's thread, which must keep answering heartbeats) and sets `changed`.
Whether the lists changed is the server's to find out.

Training's own files are not watched: a root's `training/` folder (datasets, where an artist
drops pictures) and a run's `.train-state` beside its LoRA, saved every few steps, are no
models, and a rescan for each would re-read every header while the training holds the
worker. The trained LoRA itself is a model file and is noticed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from dreamwire.backend.training.layout import DATA_FOLDER, is_state_file

log = logging.getLogger("dreamwire.server")

# A root with more files than this is watched by its first ones only: the walk stays
# bounded whatever an artist points the backend at.
MAX_FILES = 50_000


def fingerprint(roots: Iterable[Path]) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every file under the roots, links followed once; not
    training's datasets and saved states."""
    out: set[tuple[str, int, int]] = set()
    seen: set[str] = set()
    for root in roots:
        for walked, (folder, dirs, files) in enumerate(os.walk(root, followlinks=True)):
            real = os.path.realpath(folder)
            if real in seen:  # a link back up the tree
                dirs[:] = []
                continue
            seen.add(real)
            if walked == 0:  # the root's own training/ (the walk is top-down: root first)
                dirs[:] = [d for d in dirs if d != DATA_FOLDER]
            for name in files:
                if is_state_file(name):
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except OSError:  # gone between the listing and the stat, or a dead link
                    continue
                out.add((path, st.st_size, st.st_mtime_ns))
                if len(out) >= MAX_FILES:
                    return frozenset(out)
    return frozenset(out)


class ModelWatch:
    """`changed` is set when the roots' files changed, held still and were scanned again;
    the server clears it (`take`) and compares its lists."""

    def __init__(self, roots: Iterable[Path], interval: float, rescan: Callable[[], None]):
        self.roots = [Path(r) for r in roots]
        self.interval = interval
        self.rescan = rescan
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dreamwire-model-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def take(self) -> bool:
        """True once per settled change."""
        if self.changed.is_set():
            self.changed.clear()
            return True
        return False

    def _run(self) -> None:
        last = fingerprint(self.roots)
        moving = False
        while not self._stop.wait(self.interval):
            try:
                now = fingerprint(self.roots)
                if now != last:
                    last, moving = now, True  # wait for it to hold still
                elif moving:
                    moving = False
                    self.rescan()
                    self.changed.set()
            except Exception:  # an unreadable root or file must not end the watch
                log.exception("could not read the model folders")
