"""RAM this process can still use, without psutil: the kernel's MemAvailable, capped by the
cgroup limit a container may set (the kernel's figure is the host's, not the container's).
"""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
# cgroup v2, then v1: (limit file, usage file).
CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)
# cgroup v1 writes "no limit" as a number near 2**63.
NO_LIMIT = 2**60


def available(meminfo: Path = MEMINFO, cgroups=CGROUP_FILES) -> int | None:
    """Bytes of RAM available now; None where it cannot be read (not Linux)."""
    free = _mem_available(meminfo)
    for limit_file, usage_file in cgroups:
        left = _cgroup_left(limit_file, usage_file)
        if left is not None:
            free = left if free is None else min(free, left)
            break
    return free


def _mem_available(meminfo: Path) -> int | None:
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            try:
                return int(parts[1]) * (1024 if parts[2:] == ["kB"] else 1)
            except (IndexError, ValueError):
                return None
    return None


def _cgroup_left(limit_file: Path, usage_file: Path) -> int | None:
    try:
        limit_text = limit_file.read_text().strip()
        usage = int(usage_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if limit_text == "max":
        return None
    try:
        limit = int(limit_text)
    except ValueError:
        return None
    if limit >= NO_LIMIT:
        return None
    # Usage counts the page cache, which the kernel reclaims before it refuses memory.
    return max(0, limit - usage + _inactive_file(usage_file.parent / "memory.stat"))


def _inactive_file(stat_file: Path) -> int:
    try:
        lines = stat_file.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        key, _, value = line.partition(" ")
        if key in ("inactive_file", "total_inactive_file"):
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
