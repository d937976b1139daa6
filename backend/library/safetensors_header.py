"""Reading a .safetensors header (key names, dtypes, shapes) without touching the tensors.

The format is an 8-byte little-endian length, a JSON header of that length, then raw data.
Identifying a multi-GB checkpoint therefore costs one small read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

# Real headers are well under 10 MB even for SDXL; anything larger is not a header.
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    tensors: dict[str, dict]  # name -> {"dtype": str, "shape": [int], "data_offsets": [a, b]}
    metadata: dict[str, str]

    def shape(self, key: str) -> tuple[int, ...] | None:
        info = self.tensors.get(key)
        return tuple(info["shape"]) if info else None

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.tensors)


def read_header(path: Path) -> Header:
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", raw)
            if length > MAX_HEADER:
                # Checked before anything is read or allocated for it.
                raise ValueError(
                    f"its header length field says {length} bytes, more than the "
                    f"{MAX_HEADER // 2**20} MiB any real header needs: the file is damaged or "
                    "not a safetensors file"
                )
            if length == 0 or 8 + length > size:
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(f.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        data_size = size - 8 - length
        for name, info in header.items():
            start, end = info["data_offsets"]
            if not (0 <= start <= end <= data_size):
                raise ValueError(f"tensor {name!r} lies outside the file")
            tuple(int(d) for d in info["shape"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{path.name} is not a valid .safetensors file ({exc})"
        ) from exc
    return Header(tensors=header, metadata={str(k): str(v) for k, v in metadata.items()})
