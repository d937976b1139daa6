"""One kritarunner run for the offscreen Krita tests: the offline checks (no backend), the
checks against a recording backend, and the plugin starting its own local backend.

Krita takes ~19 s of CPU to start on the CI box; the three modules used to start it once
each. The parts run in that order in one Krita (scripts/dw_parts.py): offline first, while
no document is open yet; the local backend last, as it changes the plugin's settings.
"""

from __future__ import annotations

import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from krita_harness import KritaRunFailed, build_zip, make_profile, run_script

from tests.support.backend import BackendProcess

HERE = Path(__file__).resolve().parent

# The document colour spaces the offline part converts to and from.
SPACES = [
    ("RGBA", "U8"),
    ("RGBA", "U16"),
    ("RGBA", "F16"),
    ("RGBA", "F32"),
    ("GRAYA", "U8"),
    ("GRAYA", "U16"),
    ("CMYKA", "U8"),
]


class RecordingBackend(BackendProcess):
    """The real server and engine, saving the arrays each job arrived with."""

    def __init__(self, record: Path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.record = record

    def command(self) -> list[str]:
        bind = self.address or self.bind
        return [
            sys.executable,
            str(HERE / "recording_backend.py"),
            str(self.record),
            "--models",
            *map(str, self.models),
            "--bind",
            bind,
            "--out",
            str(self.out_dir),
        ]


def free_address() -> str:
    """A loopback address nothing listens on (the port is free again once closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


@dataclass
class KritaSession:
    results: dict
    record: Path  # what each job brought to the recording backend, per job id
    dump: Path  # what the backend part's script saved of the canvas
    local_command: str  # the backend command the local part stored in the settings
    local_out: Path  # where the backend the plugin started saved its results

    def part(self, name: str) -> dict:
        out = self.results[name]
        if "error" in out:
            raise KritaRunFailed(f"the {name} part failed inside Krita:\n{out['error']}")
        return out


def _save_face_landmarker(folder: Path) -> bool:
    import importlib.util

    if importlib.util.find_spec("mediapipe") is None:
        return False
    import numpy as np

    from dreamwire.backend.tiny import mediapipe_face as tiny

    points = np.random.default_rng(19).uniform(0.05, 0.95, (tiny.MESH_POINTS, 2))
    tiny.save(folder / "face_landmarker.task", tiny.Planted(((0.5, 0.5, 0.6),), points))
    return True


def run_session(root: Path, tiny_models: Path, flux_root: Path) -> KritaSession:
    record, dump, local_out = root / "record", root / "dump", root / "local-out"
    dump.mkdir(parents=True)
    prof = make_profile(root / "profile", build_zip(root / "dist"))
    local_address = free_address()
    local_command = shlex.join(
        [
            sys.executable,
            "-m",
            "dreamwire.backend",
            "serve",
            "--models",
            str(tiny_models),
            "--bind",
            local_address,
            "--out",
            str(local_out),
        ]
    )
    # The tiny Flux.1 dev in a root of its own: the default model stays tiny-sd1.
    # SAM 2 for "select by clicking", in the backend's annotator folder.
    from dreamwire.backend.tiny import sam2

    sam2.save(root / "annotators")
    # And rembg's u2netp for "select subject" there; rembg's home points there too, so an
    # installed ~/.u2net stays out.
    from dreamwire.backend.tiny import subject

    subject.save(root / "annotators", subject.U2NETP)
    # And a tiny MediaPipe face landmarker for a Face layer (mediapipe_face), where the
    # mediapipe package that builds and runs it is installed.
    face = _save_face_landmarker(root / "annotators")
    env = {"DREAMWIRE_ANNOTATORS": str(root / "annotators"), "U2NET_HOME": str(root / "annotators")}
    with RecordingBackend(record, [tiny_models, flux_root], root / "out", env=env) as backend:
        parts = [
            ["dw_offline", {"dead_address": free_address(), "spaces": SPACES}],
            [
                "dw_backend",
                {
                    "address": backend.address,
                    "backend_pid": backend.pid,
                    "dump": str(dump),
                    # For `dreamwire models merge` into the running backend's folder.
                    "python": sys.executable,
                    "models": str(tiny_models),
                    "face": face,
                },
            ],
            ["dw_local", {"address": local_address, "command": local_command}],
        ]
        results = run_script(prof, "dw_parts", {"parts": parts}, timeout=900)
    return KritaSession(results, record, dump, local_command, local_out)
