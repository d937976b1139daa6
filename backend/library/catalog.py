"""Complete, loadable config folders for the catalog's architectures.

diffusers' `from_single_file(config=FOLDER, local_files_only=True)` reads every component's
config from FOLDER, tokenizers included. The catalog ships the JSON configs; the tokenizer
files are generated from the CLIP BPE vocabulary into a cache folder on first use, so real
SD1.x/SD2.x/SDXL checkpoints load offline too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library.tokenizer import write_clip_tokenizer


def cache_root() -> Path:
    """$DREAMWIRE_CACHE, else the user's cache folder; a temp folder if that is read-only
    (a locked-down render node must still be able to load models)."""
    if env := os.environ.get("DREAMWIRE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    preferred = Path(base) / "dreamwire"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"dreamwire-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.json")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def write_pipeline_config(arch: str, dest: Path) -> Path:
    """Copy the catalog configs for `arch` into dest and add its tokenizers."""
    src = catalog.config_dir(arch)
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name, pad in catalog.arch_info(arch)["tokenizers"].items():
        write_clip_tokenizer(dest / name, pad_token=pad)
    return dest


def pipeline_config_dir(arch: str) -> Path:
    """A cached folder usable as `config=` for from_single_file; built once per catalog version."""
    src = catalog.config_dir(arch)
    target = cache_root() / "configs" / f"{arch}-{_fingerprint(src)}"
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so concurrent processes never see half a folder.
    scratch = Path(tempfile.mkdtemp(prefix=f".{arch}-", dir=target.parent))
    try:
        write_pipeline_config(arch, scratch)
        try:
            scratch.rename(target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
