"""onnxruntime sessions for the annotators and masks that run as ONNX files (DWPose's two
networks, rembg's background-removal models): made once per file and kept between jobs,
the GPU provider first where onnxruntime has one."""

from __future__ import annotations

from pathlib import Path

from dreamwire.backend.caching import BoundedCache
from dreamwire.shared.errors import DreamwireError, ErrorCode


def providers(ort) -> list[str]:
    # The GPU where onnxruntime has one; the CPU always, last.
    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider",) if p in have] + ["CPUExecutionProvider"]


def session(path: Path, what: str):
    """A new InferenceSession on `path`; `what` (the model's kind) names it in refusals."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE,
            f"{what} runs through onnxruntime, which is not installed (pip install onnxruntime)",
        ) from None
    try:
        return ort.InferenceSession(str(path), providers=providers(ort))
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"{path.name}: not a loadable ONNX model: {exc}"
        ) from exc


# DWPose holds two sessions at once, a subject mask one: three keep both warm. The size
# budget is not counted (onnxruntime's memory is not torch tensors).
_cache: BoundedCache = BoundedCache(3, size_of=lambda _: 0)


def cached(path: Path, what: str):
    """The session for `path`, made again when the file changed on disk."""
    stat = path.stat()
    return _cache.get((str(path), stat.st_mtime_ns), lambda: session(path, what))[0]
