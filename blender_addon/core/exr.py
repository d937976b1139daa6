"""A small OpenEXR reader (scanline files; NONE, ZIPS and ZIP compression).

Blender writes every render pass into one multilayer EXR; reading that file is the one
way to get Z, normal and index passes as numbers that works the same in Blender 4.2 to
5.0 and headless (the compositor's API changed in 5.0, and the Render Result image has
no readable pixels). Channels come back as float32 arrays, H x W, top row first.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

_MAGIC = b"\x76\x2f\x31\x01"
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}
_COMPRESSION_NAMES = {0: "NONE", 1: "RLE", 2: "ZIPS", 3: "ZIP", 4: "PIZ", 5: "PXR24"}


class ExrError(ValueError):
    pass


def _cstr(buf, pos: int) -> tuple[str, int]:
    end = buf.find(b"\0", pos)
    if end < 0:
        raise ExrError("truncated EXR header")
    return buf[pos:end].decode("latin-1"), end + 1


def _undo_zip(data: bytes, expected: int) -> bytes:
    raw = np.frombuffer(zlib.decompress(data), dtype=np.uint8)
    if raw.size != expected:
        raise ExrError("corrupt ZIP block")
    # Undo the predictor (running sum of byte deltas biased by 128), then the split of
    # even and odd bytes into two halves.
    t = raw.astype(np.int64)
    t[1:] -= 128
    t = np.cumsum(t) & 0xFF
    t = t.astype(np.uint8)
    half = (len(t) + 1) // 2
    out = np.empty_like(t)
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


def _read_header(buf: bytes, pos: int) -> tuple[dict[str, tuple[str, bytes]], int]:
    header: dict[str, tuple[str, bytes]] = {}
    while buf[pos] != 0:
        name, pos = _cstr(buf, pos)
        typ, pos = _cstr(buf, pos)
        size = struct.unpack_from("<i", buf, pos)[0]
        pos += 4
        header[name] = (typ, buf[pos : pos + size])
        pos += size
    return header, pos + 1


class _Part:
    def __init__(self, header: dict[str, tuple[str, bytes]]):
        if "tiles" in header or header.get("type", ("", b""))[1].startswith(b"tiled"):
            raise ExrError("tiled EXR is not supported")
        self.prefix = header["name"][1].rstrip(b"\0").decode("utf-8") if "name" in header else ""
        self.channels = []
        raw = header["channels"][1]
        p = 0
        while raw[p] != 0:
            cname, p = _cstr(raw, p)
            ptype, _plinear, xs, ys = struct.unpack_from("<iB3xii", raw, p)
            p += 16
            if xs != 1 or ys != 1:
                raise ExrError("subsampled channels are not supported")
            self.channels.append((cname, _PIXEL_TYPES[ptype]))
        self.compression = header["compression"][1][0]
        if self.compression not in _LINES_PER_BLOCK:
            name = _COMPRESSION_NAMES.get(self.compression, str(self.compression))
            raise ExrError(f"EXR compression {name} is not supported (write NONE, ZIPS or ZIP)")
        self.xmin, self.ymin, self.xmax, self.ymax = struct.unpack("<iiii", header["dataWindow"][1])
        self.width = self.xmax - self.xmin + 1
        self.height = self.ymax - self.ymin + 1
        self.lpb = _LINES_PER_BLOCK[self.compression]
        if "chunkCount" in header:
            self.nblocks = struct.unpack("<i", header["chunkCount"][1])[0]
        else:
            self.nblocks = (self.height + self.lpb - 1) // self.lpb
        self.row_bytes = sum(dt.itemsize for _, dt in self.channels) * self.width
        self.out: dict[str, np.ndarray] = {}

    def allocate(self, wanted) -> None:
        self.out = {
            name: np.empty((self.height, self.width), dtype=np.float32)
            for name, _ in self.channels
            if wanted(self.full_name(name))
        }

    def full_name(self, name: str) -> str:
        if self.prefix and not name.startswith(self.prefix + "."):
            return f"{self.prefix}.{name}"
        return name

    def read_uncompressed(self, buf: bytes, offsets, chunk_header: int, index: int, wanted):
        """Every channel at once for an uncompressed part whose blocks lie back to back in
        line order (what Blender and OpenEXR write): strided views straight into the file
        bytes, one copy per channel, instead of a Python loop over scanlines. Returns
        False, having read nothing, when the layout is anything else."""
        n = len(offsets)
        if self.compression != 0 or n == 0 or n != self.height:
            return False
        stride = chunk_header + self.row_bytes
        first = offsets[0]
        expected = first + stride * np.arange(n, dtype=np.int64)
        if first + n * stride > len(buf) or not (np.asarray(offsets) == expected).all():
            return False
        # The chunk headers, as an n x (chunk_header / 4) int32 table: [part], y, size.
        heads = np.ndarray(
            (n, chunk_header // 4), "<i4", buffer=buf, offset=first, strides=(stride, 4)
        )
        if chunk_header == 12 and not (heads[:, 0] == index).all():
            return False
        if not (heads[:, -2] == np.arange(self.ymin, self.ymin + n)).all():
            return False
        if not (heads[:, -1] == self.row_bytes).all():
            return False
        pos = first + chunk_header
        for name, dt in self.channels:
            if wanted(self.full_name(name)):
                view = np.ndarray(
                    (n, self.width), dt, buffer=buf, offset=pos, strides=(stride, dt.itemsize)
                )
                self.out[name] = view.astype(np.float32)
            pos += dt.itemsize * self.width
        return True

    def decode(self, y: int, data: bytes) -> None:
        lines = min(self.lpb, self.ymax - y + 1)
        expected = self.row_bytes * lines
        if self.compression != 0 and len(data) < expected:
            data = _undo_zip(data, expected)
        elif len(data) != expected:
            raise ExrError("corrupt EXR block")
        p = 0
        for line in range(lines):
            row = y - self.ymin + line
            for name, dt in self.channels:
                if name in self.out:
                    self.out[name][row] = np.frombuffer(data, dt, count=self.width, offset=p)
                p += dt.itemsize * self.width


def read_exr(path: str | Path, names: Callable[[str], bool] | None = None) -> dict:
    """All channels of a scanline EXR (single- or multi-part): {name: H x W float32}.

    In multi-part files a channel is named '<part name>.<channel>' unless the channel name
    already carries the part name. `names`, a predicate on those names, picks the channels
    to return (the others are skipped, not converted).
    """
    with open(path, "rb") as fh:
        if fh.read(4) != _MAGIC:
            raise ExrError(f"{path}: not an OpenEXR file")
        # Mapped rather than read: the channels are copied straight out of the page cache,
        # which halves the cost of reading a 1024x1024 render's passes.
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _read(buf, path, names or (lambda _name: True))
    finally:
        # Views into the map are gone unless an error's traceback still holds one; the
        # map then closes when that is collected.
        with contextlib.suppress(BufferError):
            buf.close()


def _read(buf, path, wanted: Callable[[str], bool]) -> dict[str, np.ndarray]:
    if buf[:4] != _MAGIC:
        raise ExrError(f"{path}: not an OpenEXR file")
    flags = struct.unpack_from("<I", buf, 4)[0]
    if flags & 0x200 or flags & 0x800:
        raise ExrError(f"{path}: tiled or deep EXR is not supported")
    multipart = bool(flags & 0x1000)
    pos = 8
    parts = []
    if multipart:
        while buf[pos] != 0:
            header, pos = _read_header(buf, pos)
            parts.append(_Part(header))
        pos += 1
    else:
        header, pos = _read_header(buf, pos)
        parts.append(_Part(header))
    tables = []
    for part in parts:
        tables.append(struct.unpack_from(f"<{part.nblocks}Q", buf, pos))
        pos += 8 * part.nblocks
    chunk_header = 12 if multipart else 8
    for index, (part, offsets) in enumerate(zip(parts, tables, strict=True)):
        if part.read_uncompressed(buf, offsets, chunk_header, index, wanted):
            continue
        part.allocate(wanted)
        if not part.out:
            continue
        for off in offsets:
            if multipart:
                pnum, y, size = struct.unpack_from("<iii", buf, off)
                if pnum != index:
                    raise ExrError("corrupt multi-part EXR offset table")
            else:
                y, size = struct.unpack_from("<ii", buf, off)
            start = off + chunk_header
            part.decode(y, buf[start : start + size])
    result: dict[str, np.ndarray] = {}
    for part in parts:
        for name, arr in part.out.items():
            result[part.full_name(name)] = arr
    return result


def layer_pass(channels: dict[str, np.ndarray], pass_name: str, layer: str | None = None):
    """Stack one pass's channels (e.g. 'Normal' -> X, Y, Z) into H x W x C, or None.

    Multilayer names are 'ViewLayer.Pass.Channel'; with layer=None the first layer that
    has the pass is used.
    """
    order = {"R": 0, "G": 1, "B": 2, "A": 3, "X": 0, "Y": 1, "Z": 2, "V": 0, "W": 3}
    found: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, arr in channels.items():
        parts = name.split(".")
        if len(parts) < 3:
            continue
        lay, pas, ch = ".".join(parts[:-2]), parts[-2], parts[-1]
        if pas == pass_name and (layer is None or lay == layer):
            found.setdefault(lay, []).append((ch, arr))
    if not found:
        return None
    chans = sorted(next(iter(found.values())), key=lambda c: order.get(c[0], 9))
    if len(chans) == 1:
        return chans[0][1][..., None]  # a view: nothing to interleave
    return np.stack([a for _, a in chans], axis=-1)
