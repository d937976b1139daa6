"""The hashes A1111 writes into infotext, computed lazily and cached on disk.

- `sha256` of the whole file; its first 10 hex digits are A1111's short hash, the
  "Model hash" field of current infotext.
- `legacy_hash`: A1111's pre-2023 model hash (sha256 of 64 KiB at offset 1 MiB, 8 digits),
  still found in old PNGs.
- `addnet_hash`: the LoRA hash ("Lora hashes" field): sha256 of a .safetensors file's tensor
  data, without the header, first 12 digits.
Hashing a 7 GB checkpoint takes a while, so results are cached by path, size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path

from dreamwire.backend.library.catalog import cache_root

CHUNK = 1024 * 1024
_lock = threading.Lock()


def _cache_file() -> Path:
    return cache_root() / "hashes.json"


def _load_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _cached(path: Path, kind: str, compute) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{kind}:{path}"
    stamp = [stat.st_size, stat.st_mtime_ns]
    with _lock:
        cache = _load_cache()
        hit = cache.get(key)
        if hit and hit.get("stamp") == stamp:
            return hit["value"]
    value = compute(path)
    with _lock:
        cache = _load_cache()
        cache[key] = {"stamp": stamp, "value": value}
        target = _cache_file()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = target.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_text(json.dumps(cache, indent=1, sort_keys=True))
            os.replace(scratch, target)
        except OSError:
            pass  # a read-only cache only costs a recomputation next time
    return value


def _sha256_file(path: Path, offset: int = 0) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    return _cached(path, "sha256", _sha256_file)


def short_hash(path: Path) -> str:
    """A1111's "Model hash": the first 10 hex digits of the file's sha256."""
    return sha256(path)[:10]


def legacy_hash(path: Path) -> str:
    def compute(p: Path) -> str:
        with p.open("rb") as f:
            f.seek(0x100000)
            return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]

    return _cached(path, "legacy", compute)


def addnet_hash(path: Path) -> str:
    """sd-scripts' / A1111's LoRA hash: sha256 of everything after the safetensors header."""

    def compute(p: Path) -> str:
        with p.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
        return _sha256_file(p, offset=8 + length)

    return _cached(path, "addnet", compute)[:12]


def folder_sha256(folder: Path) -> str:
    """Diffusers folders have no single file: hash their weight files in path order
    (a Dreamwire convention, so that such models still get a stable "Model hash")."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*.safetensors")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(sha256(path).encode())
    return digest.hexdigest()
