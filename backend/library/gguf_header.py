"""Reading a GGUF file's tensor names, types and shapes (city96's Flux files, GGUF T5).

GGUF lists every tensor's name, quantization type and shape in its header, like
safetensors; the `gguf` package (llama.cpp's reader) memory-maps the file, so nothing but
the header is read. Shapes are given here in torch's order (GGUF stores them innermost
first), so the identification code treats both formats alike.
"""

from __future__ import annotations

from pathlib import Path

from dreamwire.backend.library.safetensors_header import Header
from dreamwire.shared.errors import DreamwireError, ErrorCode

SUFFIX = ".gguf"


def read_gguf_header(path: Path) -> Header:
    try:
        import gguf
    except ImportError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{Path(path).name} is a GGUF file; reading it needs the `gguf` package "
            "(pip install gguf)",
        ) from exc
    try:
        reader = gguf.GGUFReader(str(path))
        tensors = {
            t.name: {
                "dtype": t.tensor_type.name,
                "shape": [int(d) for d in reversed(t.shape.tolist())],
            }
            for t in reader.tensors
        }
        metadata = {}
        for name, field in reader.fields.items():
            if field.types and field.types[0] == gguf.GGUFValueType.STRING:
                metadata[name] = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{Path(path).name} is not a valid GGUF file ({exc})"
        ) from exc
    return Header(tensors=tensors, metadata=metadata)
