"""Reading and writing .safetensors one tensor at a time, so that a tool over several
multi-GB checkpoints (the merger) holds a few tensors in memory, not whole files.

Reads use plain positioned reads rather than a memory map: pages of a mapped file count
toward the process's resident size until the kernel drops them, which would make a
streaming merge look (and, under memory pressure, behave) like a whole-file load.
Writes lay out the header from the planned dtypes and shapes first, then append each
tensor as it is made, into a temporary file renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from .safetensors_header import read_header

# safetensors' dtype names and torch's, both ways.
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class TensorSpec:
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty((), dtype=self.dtype).element_size()


class TensorSource(ABC):
    """The tensors of one checkpoint: names, specs, and each tensor read on demand."""

    metadata: dict[str, str]

    @abstractmethod
    def names(self) -> list[str]: ...

    @abstractmethod
    def spec(self, key: str) -> TensorSpec: ...

    @abstractmethod
    def get(self, key: str) -> torch.Tensor: ...

    @abstractmethod
    def __contains__(self, key: str) -> bool: ...


class SafetensorsSource(TensorSource):
    def __init__(self, path: Path):
        self.path = Path(path)
        header = read_header(self.path)
        self.metadata = header.metadata
        self._tensors = header.tensors
        with self.path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
        self._data_start = 8 + length
        for key, info in self._tensors.items():
            if info["dtype"] not in DTYPES:
                raise DreamwireError(
                    ErrorCode.MODEL_UNSUPPORTED,
                    f"{self.path.name}: tensor {key!r} has dtype {info['dtype']}, which this "
                    "tool does not read",
                )

    def names(self) -> list[str]:
        return list(self._tensors)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def spec(self, key: str) -> TensorSpec:
        info = self._tensors[key]
        return TensorSpec(DTYPES[info["dtype"]], tuple(int(d) for d in info["shape"]))

    def get(self, key: str) -> torch.Tensor:
        info = self._tensors[key]
        start, end = info["data_offsets"]
        spec = self.spec(key)
        if end - start != spec.nbytes:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT,
                f"{self.path.name}: tensor {key!r} holds {end - start} bytes, its shape needs "
                f"{spec.nbytes}",
            )
        buf = bytearray(end - start)
        with self.path.open("rb", buffering=0) as f:
            f.seek(self._data_start + start)
            got = f.readinto(buf)
        if got != len(buf):
            raise DreamwireError(ErrorCode.MODEL_CORRUPT, f"{self.path.name} is truncated")
        if not buf:
            return torch.empty(spec.shape, dtype=spec.dtype)
        return torch.frombuffer(buf, dtype=spec.dtype).reshape(spec.shape)


class DictSource(TensorSource):
    """Tensors already in memory (a pickled checkpoint read through the restricted loader)."""

    def __init__(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
        self._tensors = tensors
        self.metadata = metadata or {}

    def names(self) -> list[str]:
        return list(self._tensors)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def spec(self, key: str) -> TensorSpec:
        t = self._tensors[key]
        return TensorSpec(t.dtype, tuple(t.shape))

    def get(self, key: str) -> torch.Tensor:
        return self._tensors[key]


def open_source(path: Path) -> TensorSource:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return SafetensorsSource(path)
    from .convert import flatten_state_dict
    from .pickles import safe_torch_load

    return DictSource(flatten_state_dict(safe_torch_load(path)))


def write_streaming(
    path: Path,
    plan: Iterable[tuple[str, TensorSpec]],
    make: Callable[[str], torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the planned tensors in order, each made by `make(key)` only when its turn
    comes; a made tensor must match its planned dtype and shape (else nothing is left)."""
    plan = list(plan)
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for key, spec in plan:
        header[key] = {
            "dtype": NAMES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the spec's padding: data starts 8-byte aligned
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with tmp.open("wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for key, spec in plan:
                t = make(key)
                if t.dtype != spec.dtype or tuple(t.shape) != spec.shape:
                    raise AssertionError(
                        f"{key}: made {t.dtype} {tuple(t.shape)}, planned {spec.dtype} {spec.shape}"
                    )
                f.write(_bytes(t))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().contiguous().cpu()
    if t.numel() == 0:
        return memoryview(b"")
    # A byte view of the storage: no copy through numpy (which lacks bf16/fp8).
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())
