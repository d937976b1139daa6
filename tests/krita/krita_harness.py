"""Run real Krita headless on a throwaway profile and read back what the script wrote.

Every run gets its own HOME / XDG_* folders, so the artist's real Krita profile is never
touched. The plugin is installed from the built zip by Krita's own plugin importer (the
code behind Tools > Scripts > Import Python Plugin from File) and enabled in a kritarc.
A run is judged by the JSON file its script writes, never by Krita's exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
KRITARUNNER = shutil.which("kritarunner")
KRITA = shutil.which("krita")
XVFB = shutil.which("Xvfb")


def build_module():
    """krita_plugin/build.py, loaded by path (a PyPI package is also called `build`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "dreamwire_krita_build", REPO / "krita_plugin" / "build.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_zip(out: Path) -> Path:
    return build_module().build(out)


@dataclass
class Profile:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def pykrita(self) -> Path:
        return self.data / "krita" / "pykrita"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "QT_", "PYTHON"))}
        runtime = self.root / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env.update(
            HOME=str(self.root / "home"),
            XDG_DATA_HOME=str(self.data),
            XDG_CONFIG_HOME=str(self.config),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_RUNTIME_DIR=str(runtime),
            # kritarunner only searches its own data folder; point it at the installed plugins.
            PYTHONPATH=os.pathsep.join([str(self.pykrita), str(SCRIPTS)]),
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env


def make_profile(root: Path, plugin_zip: Path, settings: dict[str, str] | None = None) -> Profile:
    prof = Profile(root)
    for d in (prof.data, prof.config, root / "home"):
        d.mkdir(parents=True, exist_ok=True)
    (prof.data / "krita").mkdir(exist_ok=True)
    prof.pykrita.mkdir(parents=True, exist_ok=True)
    if IMPORTER.exists():
        subprocess.run(
            [sys.executable, str(IMPORTER), str(plugin_zip), str(prof.data / "krita")],
            check=True,
            capture_output=True,
            timeout=60,
        )
    else:  # Krita without its importer: unpack as the importer would
        with zipfile.ZipFile(plugin_zip) as zf:
            zf.extractall(prof.pykrita)
    lines = ["[python]", "enable_dreamwire_krita=true", "enable_dwtest_startup=true", ""]
    if settings:
        lines += ["[dreamwire]"] + [f"{k}={v}" for k, v in settings.items()] + [""]
    # Skip first-run chatter that would otherwise wait for a click under xvfb.
    lines += ["[General]", "ShowNewsWidget=false", "showSplash=false", ""]
    (prof.config / "kritarc").write_text("\n".join(lines))
    return prof


class KritaRunFailed(AssertionError):
    pass


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    """Run in a process group of its own and kill the whole group on timeout: Krita under
    xvfb-run is a grandchild, and must not outlive a hung test."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return f"TIMEOUT after {timeout}s\n{out}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _result(out: Path, proc_out: str) -> dict:
    if not out.exists():
        stacks = Path(str(out) + ".stacks")
        where = stacks.read_text()[-6000:] if stacks.exists() else ""
        raise KritaRunFailed(
            f"Krita wrote no result file; its output ended with:\n{proc_out[-4000:]}\n{where}"
        )
    data = json.loads(out.read_text())
    if "error" in data:
        raise KritaRunFailed(f"the script failed inside Krita:\n{data['error']}")
    return data


def run_script(prof: Profile, script: str, config: dict, timeout: float = 180) -> dict:
    """kritarunner -s script -f main, with config passed as a JSON file."""
    out = prof.root / f"{script}-result.json"
    out.unlink(missing_ok=True)
    cfg = prof.root / f"{script}-config.json"
    cfg.write_text(json.dumps(config))
    env = prof.env(QT_QPA_PLATFORM="offscreen", DW_TEST_CONFIG=str(cfg), DW_TEST_RESULT=str(out))
    text = _run([KRITARUNNER, "-s", script, "-f", "main"], env, prof.root, timeout)
    return _result(out, text)


def run_gui(
    prof: Profile, config: dict, timeout: float = 240, screen: tuple[int, int] = (1600, 1000)
) -> dict:
    """Full Krita under Xvfb on a `screen` (w, h); the dwtest_startup plugin drives it."""
    startup = SCRIPTS / "dwtest_startup"
    shutil.copytree(startup, prof.pykrita / "dwtest_startup", dirs_exist_ok=True)
    shutil.copy(SCRIPTS / "dwtest_startup.desktop", prof.pykrita)
    shutil.copy(SCRIPTS / "dwtest.py", prof.pykrita / "dwtest_startup" / "dwtest.py")
    out = prof.root / "gui-result.json"
    out.unlink(missing_ok=True)
    cfg = prof.root / "gui-config.json"
    cfg.write_text(json.dumps(config))
    env = prof.env(DW_TEST_CONFIG=str(cfg), DW_TEST_RESULT=str(out))
    for _attempt in range(3):
        with _xvfb(screen) as display:
            env["DISPLAY"] = display
            text = _run([KRITA, "--nosplash"], env, prof.root, timeout)
        # Another X server can take the display between Xvfb and Krita: try a fresh one.
        if "could not connect to display" not in text:
            break
    return _result(out, text)


class _xvfb:
    """A private X server on a display number the server picks itself (-displayfd), so
    parallel test runs never race for the same display as `xvfb-run -a` can."""

    def __init__(self, screen: tuple[int, int]):
        self.screen = f"{screen[0]}x{screen[1]}x24"

    def __enter__(self) -> str:
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [XVFB, "-displayfd", str(w), "-screen", "0", self.screen, "-nolisten", "tcp"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            raise KritaRunFailed("Xvfb did not start")
        return f":{number}"

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
