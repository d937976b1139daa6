"""Start-up notices that say nothing to an artist: transformers announces, on every run,
that its image processors fall back to Pillow without torchvision (the CLIP and SigLIP
encoders' processors; Pillow is what Dreamwire installs, and the fallback is exact)."""

from __future__ import annotations

import logging

_NOTICE = "requires torchvision"


class _DropTorchvisionNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _NOTICE not in record.getMessage()


def silence_torchvision_notice() -> None:
    """Drop that one notice from transformers' own handler (transformers keeps its log
    records to itself: they do not propagate, so a filter must sit on its handler)."""
    try:
        import transformers  # noqa: F401  (lazy: importing the package loads no model code)
    except ImportError:
        return
    for handler in logging.getLogger("transformers").handlers:
        if not any(isinstance(f, _DropTorchvisionNotice) for f in handler.filters):
            handler.addFilter(_DropTorchvisionNotice())
