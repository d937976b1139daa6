"""Type checks for one job field at a time, each refusal naming the field.

A job arrives as JSON from any peer, so every field can hold any JSON value: a list where a
name belongs, text where a number belongs, `true` where a count belongs (Python's bool is
an int), or an integer too large for a float. Job.validate checks each field's type and
range with these before it looks at what the values mean, so a wrong value is refused with
the field's name and a stable code, never reaches the engine as an `internal` error.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import DreamwireError, ErrorCode


class FieldCheck:
    """Checks for the fields of one job; `prefix` names the nested object ("hires.")."""

    def __init__(self, job_id: str, prefix: str = ""):
        self.job_id = job_id if isinstance(job_id, str) else ""
        self.prefix = prefix

    def nested(self, prefix: str) -> FieldCheck:
        return FieldCheck(self.job_id, self.prefix + prefix)

    def fail(self, name: str, what: str, value: Any, code: ErrorCode) -> DreamwireError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return DreamwireError(code, f"{self.prefix}{name} must be {what}, got {shown}", self.job_id)

    def text(self, name: str, value: Any, code: ErrorCode = ErrorCode.INVALID_JOB) -> None:
        if not isinstance(value, str):
            raise self.fail(name, "text", value, code)

    def whole(
        self,
        name: str,
        value: Any,
        lo: int | None = None,
        hi: int | None = None,
        code: ErrorCode = ErrorCode.INVALID_JOB,
    ) -> None:
        """An integer (not a bool, not 2.0) within lo..hi; without a range, the caller
        checks it with a message of its own."""
        if not _is_int(value):
            raise self.fail(name, "a whole number", value, code)
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise self.fail(name, f"a whole number in {lo}..{hi}", value, code)

    def number(
        self,
        name: str,
        value: Any,
        lo: float | None = None,
        hi: float | None = None,
        code: ErrorCode = ErrorCode.INVALID_JOB,
    ) -> None:
        """A finite number (an integer too) within lo..hi (see whole)."""
        ok = _is_int(value) or (
            isinstance(value, numbers.Real) and not _is_bool(value) and math.isfinite(value)
        )
        if not ok:
            raise self.fail(name, "a number", value, code)
        # Python compares a huge int with a float exactly, so 10**400 is simply out of range.
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise self.fail(name, f"a number in {lo:g}..{hi:g}", value, code)

    def flag(self, name: str, value: Any, optional: bool = False) -> None:
        if not (_is_bool(value) or (optional and value is None)):
            what = "true, false or null" if optional else "true or false"
            raise self.fail(name, what, value, ErrorCode.INVALID_JOB)

    def listed(self, name: str, value: Any) -> None:
        if not isinstance(value, list):
            raise self.fail(name, "a list", value, ErrorCode.INVALID_JOB)

    def kind(self, name: str, value: Any, cls: type) -> None:
        if not isinstance(value, cls):
            raise self.fail(name, f"an object ({cls.__name__})", value, ErrorCode.INVALID_JOB)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool too


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)
